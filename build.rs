//! The extension finds libtorch beside itself: setup.sh installs libtorch's libraries (and the
//! CUDA runtime they need) into `$(pg_config --pkglibdir)/stan/`, and the RUNPATH is relative to
//! stan.so, so the installed extension depends on nothing in the build tree.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/stan/torch/lib");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
}
