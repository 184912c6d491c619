//! Bakes the libtorch directory into the rpath of test and bench binaries so they load libtorch
//! without LD_LIBRARY_PATH.
fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB: is LIBTORCH set?");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
}
