//! Measurements on real pairs: `PATCH_LAB="old new" cargo test -p firmchain-update --release lab -- --ignored --nocapture`.

use super::branch;
use super::coder::{self, LzmaTuning};
use super::create::bidiff_streams;
use super::zero_runs;

fn zstd(data: &[u8], log: u32) -> usize {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    enc.window_log(log).unwrap();
    enc.long_distance_matching(true).unwrap();
    enc.set_pledged_src_size(Some(data.len() as u64)).unwrap();
    std::io::Write::write_all(&mut enc, data).unwrap();
    enc.finish().unwrap().len()
}

#[test]
#[ignore]
fn lab() {
    let spec = std::env::var("PATCH_LAB").unwrap();
    let mut it = spec.split_whitespace();
    let old = std::fs::read(it.next().unwrap()).unwrap();
    let new = std::fs::read(it.next().unwrap()).unwrap();
    for filtered in [false, true] {
        let (mut o, mut n) = (old.clone(), new.clone());
        if filtered {
            let (Some(fo), Some(fnew)) = (branch::detect(&o), branch::detect(&n)) else {
                println!("no filter");
                continue;
            };
            println!("filter {:?} {:?}", fnew.arch, fnew.ranges);
            branch::encode(&fo, &mut o);
            branch::encode(&fnew, &mut n);
        }
        let t = std::time::Instant::now();
        let s = bidiff_streams(&o, &n);
        println!(
            "filtered={filtered} diff {:?} control {} add {} copy {}",
            t.elapsed(),
            s.control.len(),
            s.add.len(),
            s.copy.len()
        );
        let runs = zero_runs::encode(&s.add);
        for (name, data) in [
            ("control", &s.control),
            ("add", &s.add),
            ("addruns", &runs),
            ("copy", &s.copy),
        ] {
            let z = zstd(data, 21);
            let mut line = format!("  {name:8} zstd21 {z:9}");
            for log in [22u8] {
                for (tn, tu) in [("def", LzmaTuning::DEFAULT), ("bytes", LzmaTuning::BYTES)] {
                    let t = std::time::Instant::now();
                    let l = coder::lzma2_compress(data, log, tu).unwrap().len();
                    line += &format!(" l{log}{tn} {l} ({:.1}s)", t.elapsed().as_secs_f32());
                }
            }
            println!("{line}");
        }
    }
}
