//! CAR import: never panics, and every block it yields matches its CID.
#![no_main]

use firmchain_update::car::CarReader;
use firmchain_update::dag::verify_block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CarReader::new(data) else { return };
    while let Ok(Some((cid, _, block))) = reader.next_block() {
        assert!(verify_block(&cid, &block).is_ok());
    }
});
