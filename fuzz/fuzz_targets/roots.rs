#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tallytree_cli::fuzzing::roots(data));
