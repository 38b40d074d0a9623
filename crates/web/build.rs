//! Embeds the front-end of `web/`: a generated `assets.rs` lists each built file with
//! its content type and ETag, and says whether it is the real app (`FRONT_END_BUILT`).
//!
//! Where the files come from, first that applies:
//! 1. `DOTHI_WEB_DIST`: a directory built beforehand (`npm run build` with
//!    `DOTHI_WEB_OUT`), for builds on machines without Node.js;
//! 2. `npm run build` into `OUT_DIR/dist`, when npm runs and `web/node_modules` is
//!    installed and current (`npm ci` in `web/`; this script never installs it);
//! 3. a placeholder page saying how to build the app, with a cargo warning, so that
//!    `cargo check`, `clippy` and `test` work without npm. `DOTHI_WEB_REQUIRED=1` (set
//!    by `scripts/test.sh` and CI) turns this case into a build error.
//!
//! Only changes to the front-end's sources, manifest, lock, installed modules or build
//! script rebuild it.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in [
        "package.json",
        "package-lock.json",
        "build.mjs",
        "src",
        "node_modules/.package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    for var in ["NPM", "DOTHI_WEB_DIST", "DOTHI_WEB_REQUIRED"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let required = std::env::var("DOTHI_WEB_REQUIRED").is_ok_and(|v| v == "1");

    let (dist, built) = if let Some(prebuilt) = std::env::var_os("DOTHI_WEB_DIST") {
        let prebuilt = PathBuf::from(prebuilt);
        if !prebuilt.join("index.html").is_file() {
            panic!(
                "DOTHI_WEB_DIST={} holds no index.html: build it with \
                 `DOTHI_WEB_OUT=<dir> npm run build` in web/",
                prebuilt.display()
            );
        }
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        (prebuilt, true)
    } else {
        let dist = out.join("dist");
        let _ = std::fs::remove_dir_all(&dist);
        match missing_tools(&web) {
            None => {
                let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_string());
                run(
                    Command::new(&npm)
                        .args(["run", "build", "--silent"])
                        .env("DOTHI_WEB_OUT", &dist)
                        .current_dir(&web),
                    "npm run build",
                );
                (dist, true)
            }
            Some(why) if required => panic!(
                "the web app cannot be built: {why} (DOTHI_WEB_REQUIRED=1 refuses the placeholder page)"
            ),
            Some(why) => {
                println!(
                    "cargo:warning=the web app is a placeholder page: {why}; run `npm ci` in web/ and build again"
                );
                write_placeholder(&dist, &why);
                (dist, false)
            }
        }
    };
    write_manifest(&dist, &out.join("assets.rs"), built);
}

/// Why `npm run build` cannot run here, if it cannot.
fn missing_tools(web: &Path) -> Option<String> {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_string());
    if Command::new(&npm).arg("--version").output().is_err() {
        return Some("npm was not found (install Node.js and npm)".into());
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&web.join("node_modules/.package-lock.json")),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) if installed >= lock => None,
        (Some(_), _) => Some("web/node_modules is older than web/package-lock.json".into()),
        (None, _) => Some("web/node_modules is not installed".into()),
    }
}

/// The pages the server serves, each saying the app was not built and how to build it.
fn write_placeholder(dist: &Path, why: &str) {
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>dothi</title>\
         <h1>dothi</h1><p>This server was built without its web app: {why}.</p>\
         <p>Run <code>npm ci</code> in <code>web/</code> and build again. The API is at \
         <a href=\"/docs\">/docs</a>.</p></html>\n"
    );
    for target in ["index.html", "ioc/index.html", "data/index.html"] {
        let path = dist.join(target);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the placeholder's directory");
        }
        std::fs::write(&path, &page).expect("write the placeholder page");
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
fn write_manifest(dist: &Path, target: &Path, built: bool) {
    let mut files = Vec::new();
    collect(dist, &mut files);
    files.sort();
    let mut code = format!(
        "/// Whether the real web app is embedded (else a placeholder page).\n\
         pub const FRONT_END_BUILT: bool = {built};\n\
         pub static ASSETS: &[Asset] = &[\n"
    );
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
