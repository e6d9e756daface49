#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clip_fuzz::url_params(data));
