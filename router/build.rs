//! Lays out the router binary's code in the order of
//! `link/symbol-order.txt`: the functions it runs at start and per request
//! side by side, so starting touches a few MiB of its text instead of most
//! of it (see examples/scripts/symbol_order.sh, which writes the file).
//!
//! Only optimised builds for x86_64 Linux with a compiler that links with
//! lld (Rust 1.90 and later): other linkers do not know the option. Set
//! `SWITCHBOARD_SYMBOL_ORDER=off` to link without it, e.g. with a linker
//! of your own.

use std::path::Path;
use std::process::Command;

const ORDER_FILE: &str = "link/symbol-order.txt";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_SYMBOL_ORDER");
    if ordering_applies() {
        let file = Path::new(&env("CARGO_MANIFEST_DIR")).join(ORDER_FILE);
        println!(
            "cargo:rustc-link-arg-bin=router=-Wl,--symbol-ordering-file={}",
            file.display()
        );
        // The file names the symbols of one build; others lack some.
        println!("cargo:rustc-link-arg-bin=router=-Wl,--no-warn-symbol-ordering");
    }
}

fn ordering_applies() -> bool {
    env("SWITCHBOARD_SYMBOL_ORDER") != "off"
        && env("TARGET") == "x86_64-unknown-linux-gnu"
        && env("OPT_LEVEL") != "0"
        && Path::new(&env("CARGO_MANIFEST_DIR"))
            .join(ORDER_FILE)
            .exists()
        && rustc_minor_version().is_some_and(|minor| minor >= 90)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The `N` of the compiler's `rustc 1.N.x`.
fn rustc_minor_version() -> Option<u32> {
    let output = Command::new(env("RUSTC")).arg("--version").output().ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
