//! Builds the front-end in `web/` with npm and embeds it: `npm ci` when `node_modules`
//! is missing or older than the lock file, then `npm run build` into `OUT_DIR/dist`,
//! and a generated `assets.rs` listing each built file with its content type and ETag.
//! Only changes to the front-end's sources, manifest, lock or build script rebuild it.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dist = out.join("dist");
    for watched in ["package.json", "package-lock.json", "build.mjs", "src"] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=NPM");

    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_string());
    if Command::new(&npm).arg("--version").output().is_err() {
        panic!(
            "npm was not found: the web app (web/) is built with Node.js and npm; install \
             them (e.g. `apt-get install nodejs npm`) and build again"
        );
    }
    if needs_install(&web) {
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&web),
            "npm ci",
        );
    }
    let _ = std::fs::remove_dir_all(&dist);
    run(
        Command::new(&npm)
            .args(["run", "build", "--silent"])
            .env("DOTHI_WEB_OUT", &dist)
            .current_dir(&web),
        "npm run build",
    );
    write_manifest(&dist, &out.join("assets.rs"));
}

/// Whether `node_modules` is missing or predates the lock file.
fn needs_install(web: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&web.join("node_modules/.package-lock.json")),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{what} failed in web/ ({status})"),
        Err(e) => panic!("{what} could not start: {e}; install Node.js and npm"),
    }
}

/// Writes `ASSETS`: (URL path, content type, ETag, bytes) of every built file.
fn write_manifest(dist: &Path, target: &Path) {
    let mut files = Vec::new();
    collect(dist, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for file in files {
        let rel = file
            .strip_prefix(dist)
            .expect("inside dist")
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(&file).expect("read a built asset");
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let etag = format!("\"{:016x}-{}\"", hasher.finish(), bytes.len());
        let _ = writeln!(
            code,
            "    Asset {{ path: {:?}, content_type: {:?}, etag: {:?}, body: include_bytes!({:?}) }},",
            format!("/{rel}"),
            content_type(&rel),
            etag,
            file.display().to_string(),
        );
    }
    code.push_str("];\n");
    std::fs::write(target, code).expect("write assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the front-end build left no {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}
