//! `switchyard`: the hub binary. All logic lives in the library
//! (`switchyard_hub::cli`).

/// The hub's memory allocator: jemalloc, which also takes the place of the
/// C library's `malloc` (SQLite allocates through it).
///
/// Allocation and freeing were about a fifth of the hub's CPU samples in
/// the durable pipeline. In interleaved runs jemalloc cut the hub's CPU per
/// stored record by about a tenth and per streamed `Enrich` record by about
/// a fifth, for 3.5 MB more RSS with 10 plugins and 0.12 MB more per plugin.
/// mimalloc cut as much but tripled the RSS (a heap for each plugin
/// connection's thread). Figures: docs/benchmarks.md, "The hub's
/// allocator".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    switchyard_hub::cli::main()
}
