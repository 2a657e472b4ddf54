//! Admin request bodies never panic, and every refusal is a 4xx.
#![no_main]
use failover_monitor::admin::{parse_move_request, parse_pause_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_move_request(data) {
        Ok(r) => assert!(!r.reason.trim().is_empty() && !r.caller.is_empty()),
        Err(e) => assert!(e.status().is_client_error()),
    }
    if let Err(e) = parse_pause_request(data) {
        assert!(e.status().is_client_error());
    }
});
