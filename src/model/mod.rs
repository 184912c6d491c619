//! The STAN network (paper section 4), its training loop and its sampler. No pgrx here.
//!
//! Design choice (recorded here because the paper differs): the paper gives every attribute its
//! own window CNN. The window of past rows is the same for every attribute of a row, so by
//! default we run one shared window CNN per row and give each head a small MLP that sees the
//! CNN's summary of the past, the most recent row, and (mask B) the current row's earlier
//! attributes. The factorisation P(x_ij | x_{i-k..i-1}, x_{i,1..j-1}) is unchanged; generation
//! costs one CNN pass per row instead of one per attribute. `cnn_per_attribute` gives the
//! paper's layout; benches/RESULTS.md has the measurement behind the default.

pub mod cpu;
pub mod device;
pub mod heap;
pub mod net;
pub mod sample;
pub mod spec;
pub mod train;

pub use net::StanNet;
pub use spec::{AttributeSpec, HeadSpec, Mask, ModelConfig};
