//! The node's memory allocator. Rust allocations go to mimalloc; the C libraries linked in (the
//! embedded store's SQLite, libgit2, aws-lc) still allocate with glibc's malloc.
//!
//! A request is dozens of small, short-lived allocations (headers, JSON, frames, futures), made
//! and freed on the same worker thread, which mimalloc serves from per-thread free lists. With
//! glibc's malloc a cross-node request spent about 17 % of the gateway's CPU and 30 % of the
//! callee's in malloc and free (docs/BENCHMARKS.md, "Frame links" and "Allocator").

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mi_option_t` of the mimalloc.h that libmimalloc-sys 0.1.49 builds
/// (mimalloc v3); the crate names only some of the options.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocators up, first thing in `main`, before any thread starts.
///
/// - mimalloc gives the pages it no longer uses back to the system at once, not after its default
///   second: it purges only when it is called again, so with a delay the memory freed by the last
///   work before a quiet spell stayed resident (an idle gateway node at 29.8 MiB against 27.4, an
///   all-in-one node at 58 against 46). `MIMALLOC_PURGE_DELAY` in the environment overrides it.
/// - glibc maps allocations of 1 MiB and more for themselves and unmaps them when freed. Its
///   default raises that threshold to the largest block freed so far (up to 32 MiB), after which
///   large blocks stay in whichever of its per-thread arenas freed them.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores an option's value.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LARGE_BLOCK: libc::c_int = 1024 * 1024;
        // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
        }
    }
}

/// Returns to the system the memory that starting the node used and freed (parsed configuration,
/// route tables, migrations, compiled patterns). Once, when every service has started.
pub fn give_back_start_up_memory() {
    // SAFETY: both only release memory that the allocator holds and no block uses.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_the_node_sets_is_mimallocs_purge_delay() {
        // The only option of this mimalloc whose default is 1000 (ms) is the purge delay, so
        // the number names it. The test binary does not run `configure`.
        let expected = std::env::var("MIMALLOC_PURGE_DELAY").ok().and_then(|value| value.parse().ok()).unwrap_or(1000);
        // SAFETY: mi_option_get only reads an option's value.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, expected);
    }
}
