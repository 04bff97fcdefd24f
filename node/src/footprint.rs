//! Releasing the code pages that only start-up used.
//!
//! A file-backed page is mapped in by a fault together with its neighbours (the kernel's fault-around: 64 KiB
//! on this machine), so parsing the command line, reading the configuration and starting the node leave most
//! of the binary's 8 MiB of code resident (bench/results/device.md: 86 of its 134 64 KiB windows before a
//! command did anything). Once start-up is over, [`release_startup_code`] unmaps the resident pages of the
//! binary's read-only segments from this process (`madvise(MADV_DONTNEED)`): they stay in the page cache,
//! and what the node still runs comes back on its next fault. Only segments the program can never write are
//! released (no `PF_W`: `.text`, `.rodata`; relocated data is in writable segments and kept), so nothing is
//! lost: a private mapping that was never written holds nothing but the file's bytes.

/// One program header, as far as [`read_only_ranges`] needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_vaddr`.
    pub vaddr: usize,
    /// `p_memsz`.
    pub memsz: usize,
}

const PT_LOAD: u32 = 1;
const PF_W: u32 = 2;

/// The whole pages of the loaded, never writable segments of an object loaded at `bias`: `[start, end)`
/// address ranges, each shrunk inward to page boundaries so that no page shared with another segment is
/// included.
pub fn read_only_ranges(bias: usize, segments: &[Segment], page: usize) -> Vec<(usize, usize)> {
    segments
        .iter()
        .filter(|s| s.kind == PT_LOAD && s.flags & PF_W == 0)
        .filter_map(|s| {
            let start = bias.checked_add(s.vaddr)?;
            let end = start.checked_add(s.memsz)?;
            let start = start.checked_next_multiple_of(page)?;
            let end = end - end % page;
            (start < end).then_some((start, end))
        })
        .collect()
}

/// Unmap the resident pages of the executable's read-only segments from this process (Linux; elsewhere
/// nothing). Returns the bytes of address space advised.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_startup_code() -> usize {
    use std::ffi::{c_int, c_void};

    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data` is the
        // `Vec<(usize, usize)>` that release_startup_code lent it.
        let (info, ranges) = unsafe { (&*info, &mut *data.cast::<Vec<(usize, usize)>>()) };
        let phdrs = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers of the loaded object.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let segments: Vec<Segment> = phdrs
            .iter()
            .map(|p| Segment {
                kind: p.p_type,
                flags: p.p_flags,
                vaddr: p.p_vaddr as usize,
                memsz: p.p_memsz as usize,
            })
            .collect();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        *ranges = read_only_ranges(info.dlpi_addr as usize, &segments, page.max(1));
        // The first object is the executable itself: stop there (shared libraries are not ours to advise).
        1
    }

    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // SAFETY: the callback only reads the headers it is given and writes `ranges`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first_object),
            (&mut ranges as *mut Vec<(usize, usize)>).cast(),
        );
    }
    let mut advised = 0;
    for (start, end) in ranges {
        // SAFETY: [start, end) is whole pages of a read-only segment of this executable, mapped privately from
        // its file and never written: dropping the pages loses nothing, the next access reads them again.
        let done = unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
        if done == 0 {
            advised += end - start;
        }
    }
    advised
}

/// Unmap the resident pages of the executable's read-only segments (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn release_startup_code() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flags: u32, vaddr: usize, memsz: usize) -> Segment {
        Segment {
            kind: PT_LOAD,
            flags,
            vaddr,
            memsz,
        }
    }

    /// The layout of a static-pie device build: R, R E, RW (RELRO), RW; plus a TLS header.
    #[test]
    fn only_whole_pages_of_read_only_loaded_segments() {
        let segments = [
            load(4, 0, 0x25f0c8),
            load(5, 0x260100, 0x85aba0),
            load(6, 0xabbca0, 0x49360),
            load(6, 0xb05e80, 0xe8c8),
            Segment {
                kind: 7,
                flags: 4,
                vaddr: 0xabbca0,
                memsz: 0x320,
            },
        ];
        let bias = 0x7f00_0000_0000;
        assert_eq!(
            read_only_ranges(bias, &segments, 0x1000),
            vec![(bias, bias + 0x25f000), (bias + 0x261000, bias + 0xaba000)]
        );
    }

    #[test]
    fn a_segment_within_one_page_releases_nothing() {
        assert!(read_only_ranges(0, &[load(5, 0x1100, 0x800)], 0x1000).is_empty());
        assert!(read_only_ranges(usize::MAX - 10, &[load(5, 0x100, 0x8000)], 0x1000).is_empty());
    }

    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssFile in /proc/self/status")
    }

    /// Releasing the code pages lowers the file-backed RSS, and the code still runs afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn released_code_pages_leave_rss_and_come_back_on_use() {
        let before = rss_file_kib();
        let advised = release_startup_code();
        let after = rss_file_kib();
        assert!(advised > 0, "nothing was advised");
        assert!(
            after < before,
            "file-backed RSS did not fall: {before} KiB before, {after} KiB after"
        );
        // Code and read-only data still work: format, hash and sort something.
        let mut v: Vec<String> = (0..1000).map(|i| format!("{:x}", i * 7919)).collect();
        v.sort();
        assert_eq!(v.len(), 1000);
        assert_eq!(firmchain_update::Blake3Hash::of(b"abc").to_string().len(), 64);
    }
}
