//! Bakes the libtorch directory into the extension's rpath so the server loads libtorch
//! without LD_LIBRARY_PATH, and records it so the CUDA backend can be dlopen'ed at run time.
fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB: is LIBTORCH set?");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-env=STAN_LIBTORCH_LIB={lib}");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
}
