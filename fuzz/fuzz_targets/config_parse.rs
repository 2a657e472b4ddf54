//! monitor.toml parsing and validation never panic, whatever the bytes; an error
//! always names a key.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let env = [("FAILOVER_MONITOR__MONITOR__MODE".to_string(), "manual".to_string())];
        if let Err(e) = failover_config::parse(text, Vec::new()) {
            assert!(!e.to_string().is_empty());
        }
        let _ = failover_config::parse(text, env);
    }
});
