//! Lets binaries and tests find the prebuilt `libduckdb.so` at run time without
//! LD_LIBRARY_PATH: the folder the build linked against becomes an rpath entry.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
