//! Record decoding: never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use firmchain_update::ReleaseRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = ReleaseRecord::abi_decode(data) {
        assert_eq!(record.abi_encode(), data);
        let _ = record.validate();
    }
});
