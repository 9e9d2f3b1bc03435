//! How a plugin binary is linked, so that the launch rows say which build
//! they measured: a binary that names a program interpreter (`PT_INTERP`,
//! the dynamic loader) loads shared libraries at every start; a static one
//! (`-C target-feature=+crt-static`, static-pie on glibc) does not. The
//! difference is about half a millisecond per start on our machines
//! (docs/benchmarks.md, "Launch: a plugin linked static-pie").

use std::io::Read as _;
use std::path::Path;

use object::elf::{FileHeader64, PT_INTERP};
use object::read::elf::{FileHeader as _, ProgramHeader as _};

/// How much of a binary is read: its ELF header and program headers come
/// first, well inside this.
const HEADERS_BYTES: u64 = 64 * 1024;

/// How an executable is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// No program interpreter: nothing is loaded at start but the binary.
    Static,
    /// Started by the dynamic loader, with shared libraries.
    Dynamic,
    /// Not a 64-bit ELF file this can read.
    Unknown,
}

impl Linkage {
    /// Reads the program headers of the executable at `path`.
    pub fn of(path: &Path) -> Linkage {
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|file| file.take(HEADERS_BYTES).read_to_end(&mut bytes));
        match read {
            Ok(_) => Linkage::of_bytes(&bytes),
            Err(_) => Linkage::Unknown,
        }
    }

    /// The linkage of an executable's first bytes (its ELF header and
    /// program headers).
    pub fn of_bytes(bytes: &[u8]) -> Linkage {
        let Ok(header) = FileHeader64::<object::Endianness>::parse(bytes) else {
            return Linkage::Unknown;
        };
        let Ok(endian) = header.endian() else {
            return Linkage::Unknown;
        };
        let Ok(program_headers) = header.program_headers(endian, bytes) else {
            return Linkage::Unknown;
        };
        if program_headers
            .iter()
            .any(|program_header| program_header.p_type(endian) == PT_INTERP)
        {
            Linkage::Dynamic
        } else {
            Linkage::Static
        }
    }

    /// Words for a row's label.
    pub fn describe(self) -> &'static str {
        match self {
            Linkage::Static => "linked statically",
            Linkage::Dynamic => "linked dynamically",
            Linkage::Unknown => "linkage unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian ELF64 executable header with one program header of
    /// type `p_type`, nothing else.
    fn elf_with_one_program_header(p_type: object::elf::ProgramType) -> Vec<u8> {
        let mut bytes = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        bytes.resize(16, 0);
        bytes.extend_from_slice(&3u16.to_le_bytes()); // e_type: ET_DYN (PIE)
        bytes.extend_from_slice(&62u16.to_le_bytes()); // e_machine: x86-64
        bytes.extend_from_slice(&1u32.to_le_bytes()); // e_version
        bytes.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        bytes.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        bytes.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        bytes.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        bytes.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
        bytes.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        bytes.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        bytes.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        bytes.extend_from_slice(&p_type.0.to_le_bytes());
        bytes.resize(64 + 56, 0);
        bytes
    }

    #[test]
    fn a_program_interpreter_means_dynamic_and_none_means_static() {
        assert_eq!(
            Linkage::of_bytes(&elf_with_one_program_header(PT_INTERP)),
            Linkage::Dynamic
        );
        assert_eq!(
            Linkage::of_bytes(&elf_with_one_program_header(object::elf::PT_LOAD)),
            Linkage::Static
        );
    }

    #[test]
    fn the_running_test_binary_is_read_as_dynamic_and_garbage_as_unknown() {
        // Test binaries are built without crt-static: they name ld.so.
        let me = std::env::current_exe().expect("the test binary's path");
        assert_eq!(Linkage::of(&me), Linkage::Dynamic);
        assert_eq!(Linkage::of_bytes(b"#!/bin/sh\n"), Linkage::Unknown);
        assert_eq!(
            Linkage::of(Path::new("/nonexistent/binary")),
            Linkage::Unknown
        );
    }
}
