//! The one daust binary: `daustd` (or `daust daemon`) runs the daemon,
//! `daust` the client. Which one is decided by the name it was called by
//! (`daustd` and `daust` are links to one file) or the first word.

use std::process::ExitCode;

/// musl's allocator hands freed pages back to the kernel at once and
/// faults them in again on the next allocation: a third of every daemon's
/// CPU while 500 of them formed a network. dlmalloc (pure Rust, the
/// allocator Rust's own wasm targets use) keeps them for reuse. glibc
/// builds keep glibc's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: Dlmalloc = Dlmalloc;

/// dlmalloc behind calls that are never inlined: inlined into every
/// allocation site, it made the binary 120 KB larger.
#[cfg(target_env = "musl")]
struct Dlmalloc;

#[cfg(target_env = "musl")]
unsafe impl std::alloc::GlobalAlloc for Dlmalloc {
    #[inline(never)]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        dlmalloc::GlobalDlmalloc.alloc(layout)
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        dlmalloc::GlobalDlmalloc.dealloc(ptr, layout)
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        dlmalloc::GlobalDlmalloc.alloc_zeroed(layout)
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        dlmalloc::GlobalDlmalloc.realloc(ptr, layout, size)
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("daust");
    if name.starts_with("daustd") {
        return daust::daemon::main("daustd", &rest);
    }
    match rest.first().map(String::as_str) {
        Some("daemon") => daust::daemon::main("daust daemon", &rest[1..]),
        _ => daust::cli::main(&rest),
    }
}
