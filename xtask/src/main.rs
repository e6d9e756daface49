//! Project automation, std only: `cargo xtask setup | test | serve | build | fixtures | fuzz |
//! bench-web` (and `worker-threads`, which trunk runs after each build).
//!
//! `setup` installs what the other commands need on a fresh Debian machine and is quick when
//! everything is there already; `test`, `serve` and `build` run the parts of it they need.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

const TRUNK_VERSION: &str = "0.21.14";
/// The app's default labels (src/params.rs), whose text features the bench's `int8-bank` pack
/// ships.
const DEFAULT_LABELS: &str = "person, flag, rocket, sky, ground";
const BINARYEN_VERSION: &str = "132.0.0";
const USAGE: &str =
    "usage: cargo xtask <setup | test | serve | build | fixtures | fuzz | bench-web>

  setup      install the toolchain pieces (wasm32 target, trunk, wasm-bindgen-cli, wasm-opt,
             Mesa lavapipe for native wgpu tests); quick when already done
  test       formatting, clippy (native + wasm32), unit, golden and CLI tests on CPU and wgpu,
             then the browser tests of the built app (chromium + playwright-core)
  serve      build the web app and serve it at http://127.0.0.1:8080
  build [--bundle-model DIR [--quant int8|q4|f32]]
             build the web app into dist/ (static files for any host), with the docs site
             in dist/docs/ and the service worker's precache list; --bundle-model puts a
             weight pack (a pack folder as is, or a model folder converted by the CLI) into
             dist/model/ as the default model, precached for offline use
  fixtures   regenerate the tokenizer asset, the tiny model and the goldens (PyTorch, PyPI)
  worker-threads
             build the threaded CPU workers (baseline and relaxed SIMD) into trunk's staging
             dir (trunk runs it after each build; CLIP_SURGERY_THREADS=0 skips it, and the app
             then runs one CPU thread)
  bench-web [--runs N] [--threads 1,2] [--quant f32,int8,int8+bank] [--simd auto,baseline]
             the browser bench: builds the app and the CLI (release), writes a random-init
             ViT-B/16 and its int8 pack (also with the default labels' text bank), exports it
             to ONNX (PyTorch, PyPI), then times the app's CPU path in chromium beside
             onnxruntime-web on the same weights; writes target/bench-web/results.json and
             prints a Markdown table
  fuzz [TARGET…] [--seconds N]
             run the fuzz targets under libFuzzer (nightly + cargo-fuzz, installed if missing),
             N seconds each (default 600); every `cargo xtask test` runs a bounded smoke
             version of them";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(Needs::ALL),
        Some("test") => test(),
        Some("serve") => serve(),
        Some("build") => build_command(&args[1..]),
        Some("fixtures") => fixtures(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("worker-threads") => worker_threads(),
        Some("bench-web") => bench_web(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR at run time too: two checkouts sharing one target dir
    // (as `.ci/run` does) may run each other's xtask binary, and the compile-time path would
    // then build the other checkout.
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Local tool folder (npm packages), ignored by git.
fn tools_dir() -> PathBuf {
    root().join(".tools")
}

fn run(cmd: &mut Command) -> Result {
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// PATH with the local npm binaries (wasm-opt) and cargo's bin dir first.
fn tool_path() -> String {
    let mut parts = vec![tools_dir().join("node_modules/.bin")];
    if let Some(home) = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        parts.push(home.join("bin"));
    }
    parts.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    env::join_paths(parts)
        .expect("valid PATH")
        .to_string_lossy()
        .into_owned()
}

#[derive(Clone, Copy)]
struct Needs {
    wasm: bool,
    lavapipe: bool,
    web_tools: bool,
    browser: bool,
}

impl Needs {
    const ALL: Self = Self {
        wasm: true,
        lavapipe: true,
        web_tools: true,
        browser: true,
    };
    const WEB: Self = Self {
        wasm: true,
        lavapipe: false,
        web_tools: true,
        browser: false,
    };
}

/// The browser tests' folder (package.json + lockfile for playwright-core).
fn e2e_dir() -> PathBuf {
    root().join("tests/e2e")
}

fn setup(needs: Needs) -> Result {
    if needs.wasm {
        let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
        if !installed
            .lines()
            .any(|l| l.trim() == "wasm32-unknown-unknown")
        {
            run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
        }
    }
    if cfg!(target_os = "linux") {
        let mut missing = Vec::new();
        if needs.lavapipe && !dpkg_installed("mesa-vulkan-drivers") {
            missing.push("mesa-vulkan-drivers");
        }
        // Debian's chromium (WebGPU on SwiftShader); never a downloaded browser.
        if needs.browser && !dpkg_installed("chromium") {
            missing.push("chromium");
        }
        // npm: wasm-opt (binaryen) and playwright-core come from the npm registry.
        if (needs.web_tools || needs.browser) && output("npm", &["--version"]).is_none() {
            missing.extend(["nodejs", "npm"]);
        }
        if !missing.is_empty() {
            apt_install(&missing)?;
        }
    }
    if needs.browser && !e2e_dir().join("node_modules/playwright-core").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(e2e_dir()))?;
    }
    if needs.web_tools {
        let trunk = output("trunk", &["--version"]).unwrap_or_default();
        if !trunk.contains(TRUNK_VERSION) {
            run(cargo().args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
        }
        let wb = lockfile_version("wasm-bindgen")?;
        let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
        if !have.split_whitespace().any(|w| w == wb) {
            // Not --locked: its lockfile pins a webpki-roots the registry here does not serve.
            run(cargo().args(["install", "wasm-bindgen-cli", "--version", &wb]))?;
        }
        let wasm_opt = tools_dir().join("node_modules/.bin/wasm-opt");
        if !wasm_opt.exists() {
            std::fs::create_dir_all(tools_dir()).map_err(|e| e.to_string())?;
            run(Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(tools_dir())
                .arg(format!("binaryen@{BINARYEN_VERSION}")))?;
        }
        run(cargo().args(["fetch", "--locked"]))?;
        // The threaded worker rebuilds the standard library with atomics.
        let nightly = nightly()?;
        let components = output(
            "rustup",
            &["component", "list", "--installed", "--toolchain", &nightly],
        )
        .unwrap_or_default();
        if !components.lines().any(|l| l.starts_with("rust-src")) {
            run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                &nightly,
            ]))?;
        }
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", package])
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_install(packages: &[&str]) -> Result {
    let root_user = output("id", &["-u"]).is_some_and(|s| s.trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(packages);
    run(&mut install)
}

/// The exact version of `package` in Cargo.lock (wasm-bindgen-cli must match it).
fn lockfile_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"")
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_string());
        }
    }
    Err(format!("{package} is not in Cargo.lock"))
}

fn test() -> Result {
    setup(Needs::ALL)?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--locked",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "clip-core",
        "-p",
        "clip-protocol",
        "-p",
        "clip-surgery-web",
        "-p",
        "clip-surgery-worker",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut tests = cargo();
    tests.args([
        "test",
        "--locked",
        "--no-fail-fast",
        "-p",
        "clip-core",
        "-p",
        "clip-protocol",
        "-p",
        "clip-cli",
        "-p",
        "clip-surgery-web",
        "-p",
        "clip-surgery-worker",
        "-p",
        "clip-fuzz",
        "-p",
        "xtask",
    ]);
    // With lavapipe installed the wgpu golden tests must run, not skip.
    if cfg!(target_os = "linux") && dpkg_installed("mesa-vulkan-drivers") {
        tests.env("CLIP_REQUIRE_WGPU", "1");
    }
    run(&mut tests)?;
    browser_tests()
}

/// Builds dist/ and runs tests/e2e against it, comparing with the CLI that `cargo test` built.
fn browser_tests() -> Result {
    build()?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let cli = target.join("debug/clip-surgery");
    if !cli.exists() {
        return Err(format!("{} was not built by cargo test", cli.display()));
    }
    let packs = fixture_packs(&cli, &target)?;
    let (offline, update) = offline_dists(&target, &packs)?;
    run(Command::new("node")
        .args(["--test", "app.test.mjs"])
        .current_dir(e2e_dir())
        .env("CLIP_SURGERY_BIN", &cli)
        .env("CLIP_PACKS", &packs)
        .env("CLIP_DIST", root().join("dist"))
        .env("CLIP_DIST_OFFLINE", offline)
        .env("CLIP_DIST_UPDATE", update))
}

/// Two offline demos for the browser tests, made from dist/ as `build --bundle-model` makes
/// one (the fixture's int8 pack bundled): `offline`, and `update`, the next deploy of it (one
/// shell file changed), for the update test.
fn offline_dists(target: &Path, packs: &Path) -> Result<(PathBuf, PathBuf)> {
    let (offline, update) = (target.join("e2e/offline"), target.join("e2e/update"));
    for dir in [&offline, &update] {
        let _ = std::fs::remove_dir_all(dir);
        copy_dir(&root().join("dist"), dir)?;
        finish(dir, Some(&packs.join("int8")))?;
    }
    // Not a file index.html pins by its integrity attribute (trunk's CSS and JS).
    let boot = update.join("www/boot.js");
    let changed = format!("{}\n// the next deploy\n", read_text(&boot)?);
    write(&boot, &changed)?;
    finish(&update, None)?;
    Ok((offline, update))
}

/// The tiny fixture as weight packs (`<target>/packs/{int8,q4}`), converted by the CLI under
/// test, for the browser tests to serve.
fn fixture_packs(cli: &Path, target: &Path) -> Result<PathBuf> {
    let packs = target.join("packs");
    for scheme in ["int8", "q4"] {
        run(Command::new(cli)
            .arg("convert")
            .arg("--from")
            .arg(root().join("tests/fixtures/tiny-clip"))
            .arg("--to")
            .arg(packs.join(scheme))
            .args(["--quant", scheme]))?;
    }
    Ok(packs)
}

fn trunk(args: &[&str]) -> Result {
    setup(Needs::WEB)?;
    run(Command::new("trunk")
        .args(args)
        .current_dir(root())
        .env("PATH", tool_path()))
}

fn serve() -> Result {
    trunk(&[
        "serve",
        "--release",
        "--address",
        "127.0.0.1",
        "--port",
        "8080",
    ])
}

fn build() -> Result {
    trunk(&["build", "--release"])?;
    finish(&root().join("dist"), None)
}

/// `cargo xtask build [--bundle-model DIR [--quant SCHEME]]`.
fn build_command(args: &[String]) -> Result {
    let mut model = None;
    let mut quant = "int8".to_string();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bundle-model" => model = Some(PathBuf::from(value()?)),
            "--quant" => quant = value()?.clone(),
            other => return Err(format!("unknown build flag {other:?}\n\n{USAGE}")),
        }
    }
    let Some(model) = model else {
        return build();
    };
    let dist = root().join("dist");
    // A missing folder fails before the ten minutes of the wasm build.
    if !model.is_dir() {
        return Err(format!("--bundle-model {}: not a folder", model.display()));
    }
    trunk(&["build", "--release"])?;
    let pack = if model.join("manifest.json").is_file() {
        model
    } else {
        let pack = env::temp_dir().join(format!("clip-surgery-bundle-{}", std::process::id()));
        run(cargo()
            .args(["run", "--locked", "--release", "-p", "clip-cli", "--bin"])
            .args(["clip-surgery", "--", "convert", "--from"])
            .arg(&model)
            .arg("--to")
            .arg(&pack)
            .args(["--quant", &quant]))?;
        pack
    };
    finish(&dist, Some(&pack))
}

/// The folder of a bundled pack in dist/ (the app's default model when present).
const BUNDLE_DIR: &str = "model";

/// What `cargo xtask build` adds to trunk's dist/: the docs site (docs/site/ → `docs/`), the
/// bundled pack (`model/`, named by a `clip-surgery-model` meta tag in index.html) and, last,
/// the service worker's precache list (www/sw.js `BUILD`), which hashes the files as they
/// end up. Running it again on a finished dist/ gives the same dist/.
fn finish(dist: &Path, pack: Option<&Path>) -> Result {
    copy_dir(&root().join("docs/site"), &dist.join("docs"))?;
    if let Some(pack) = pack {
        let into = dist.join(BUNDLE_DIR);
        let _ = std::fs::remove_dir_all(&into);
        copy_dir(pack, &into)?;
        let index = dist.join("index.html");
        let html = read_text(&index)?;
        let meta = format!("<meta name=\"clip-surgery-model\" content=\"{BUNDLE_DIR}/\" />");
        let html = without_bundle_meta(&html);
        let html = html.replacen("</head>", &format!("  {meta}\n  </head>"), 1);
        write(&index, &html)?;
    }
    precache_list(dist)
}

fn without_bundle_meta(html: &str) -> String {
    html.lines()
        .filter(|l| !l.contains("name=\"clip-surgery-model\""))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result {
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if entry.path().is_dir() {
                walk(&entry.path(), &format!("{rel}/"), out)?;
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Which precache group a dist/ file belongs to (see www/sw.js), or `None` for files the app
/// never loads (docs, bench, the service worker itself, copies of files served from the root).
fn precache_group(path: &str) -> Option<&'static str> {
    let first = path.split('/').next().unwrap_or("");
    match first {
        "mt" => Some("baseline"),
        "mt-relaxed" => Some("relaxed"),
        BUNDLE_DIR => Some("model"),
        "docs" | "sw.js" | "embed.js" => None,
        _ if path.starts_with("www/bench") => None,
        _ if ["www/sw.js", "www/embed.js", "www/style.css"].contains(&path) => None,
        _ => Some("shell"),
    }
}

/// `sha256-<base64>` of each file (subresource integrity), by coreutils' sha256sum.
fn integrity(dir: &Path, paths: &[String]) -> Result<Vec<String>> {
    let out = Command::new("sha256sum")
        .args(paths)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hashes: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .map(|hex| Ok(format!("sha256-{}", base64(&hex_bytes(hex)?))))
        .collect::<Result<_>>()?;
    if hashes.len() != paths.len() {
        return Err("sha256sum listed fewer files than asked".into());
    }
    Ok(hashes)
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or(format!("not a hex digest: {hex}"))
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Writes the precache list into dist/sw.js (the line `/* BUILD */ …`): each group's files
/// with their integrity, and a version that changes whenever any of them does.
fn precache_list(dist: &Path) -> Result {
    let mut groups: Vec<(&str, Vec<String>)> = ["shell", "baseline", "relaxed", "model"]
        .map(|g| (g, Vec::new()))
        .into();
    let files: Vec<(String, &str)> = files_under(dist)?
        .into_iter()
        .filter_map(|p| precache_group(&p).map(|g| (p, g)))
        .collect();
    if let Some((odd, _)) = files.iter().find(|(p, _)| p.contains(['"', '\\'])) {
        return Err(format!("{odd}: a file name the precache list cannot hold"));
    }
    let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    let hashes = integrity(dist, &paths)?;
    for ((path, group), hash) in files.iter().zip(&hashes) {
        if let Some((_, list)) = groups.iter_mut().find(|(g, _)| g == group) {
            list.push(format!("[\"{path}\", \"{hash}\"]"));
        }
    }
    let list = |g: &str| {
        groups
            .iter()
            .find(|(n, _)| *n == g)
            .map(|(_, l)| l.join(", "))
            .unwrap_or_default()
    };
    // The version: the first 16 characters of the hashes' own digest (URL-safe).
    let digest = integrity_of_text(&hashes.join("\n"))?;
    let version: String = digest["sha256-".len()..]
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let build = format!(
        "/* BUILD */ const BUILD = {{ version: \"{version}\", shell: [{}], threads: {{ baseline: [{}], relaxed: [{}] }}, model: [{}] }};",
        list("shell"),
        list("baseline"),
        list("relaxed"),
        list("model"),
    );
    let sw = dist.join("sw.js");
    let text = read_text(&sw)?;
    let Some(line) = text.lines().find(|l| l.starts_with("/* BUILD */")) else {
        return Err(format!("{}: no `/* BUILD */` line to write", sw.display()));
    };
    write(&sw, &text.replacen(line, &build, 1))?;
    eprintln!(
        "xtask: service worker version {version}: {} files precached",
        files.len()
    );
    Ok(())
}

fn integrity_of_text(text: &str) -> Result<String> {
    let tmp = env::temp_dir().join(format!("clip-surgery-version-{}", std::process::id()));
    write(&tmp, text)?;
    let hash = integrity(
        tmp.parent().unwrap_or(Path::new("/")),
        &[tmp
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()],
    );
    let _ = std::fs::remove_file(&tmp);
    Ok(hash?.remove(0))
}

/// Wasm memory of the threaded worker: shared memory must declare its maximum; 4 GiB, all of
/// wasm32's (what the single-threaded build may grow to, and what its size limits assume).
const THREADS_MAX_MEMORY: u64 = 4 << 30;

/// The threaded worker's builds: the folder in dist/ and the worker's features added to
/// `threads`. www/worker_loader.js loads `mt-relaxed/` in browsers with relaxed SIMD (its fused
/// multiply-add in the CPU's f32 products, `clip-core` model/packed.rs), `mt/` in the others.
const THREADED_BUILDS: [(&str, &str); 2] =
    [("mt", "threads"), ("mt-relaxed", "threads,relaxed-simd")];

/// `cargo xtask worker-threads`: the CPU worker with rayon on Web Workers, into
/// `$TRUNK_STAGING_DIR/mt*/` (trunk's post-build hook) or `dist/mt*/` ([`THREADED_BUILDS`]).
/// Wasm threads need atomics and bulk memory in every crate, the standard library included,
/// hence nightly's build-std; trunk builds all Rust assets with one toolchain and one set of
/// flags, hence a hook. Same profile as trunk's (Cargo.toml `wasm-release`), then wasm-bindgen
/// (`--target web`: the helper workers import the module) and wasm-opt as trunk runs them.
fn worker_threads() -> Result {
    let staging = env::var_os("TRUNK_STAGING_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist"));
    if env::var("CLIP_SURGERY_THREADS").is_ok_and(|v| v == "0") {
        eprintln!(
            "xtask: CLIP_SURGERY_THREADS=0: no threaded worker (the app runs one CPU thread)"
        );
        return Ok(());
    }
    let nightly = nightly()?;
    for (folder, features) in THREADED_BUILDS {
        threaded_worker(&nightly, features, &staging.join(folder))?;
    }
    Ok(())
}

/// One build of the threaded worker (see [`worker_threads`]) into `out`.
fn threaded_worker(nightly: &str, features: &str, out: &Path) -> Result {
    // One target dir for both builds: they differ in features only, so everything but
    // clip-core and the worker is built once.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("wasm-threads");
    // Shared memory, imported (wasm-bindgen creates it and hands it to every thread), and the
    // exports wasm-bindgen needs to set up each thread's TLS: rustc's wasm32-unknown-unknown
    // does not add these for atomics by itself. The code generation is .cargo/config.toml's
    // (SIMD, source-order scheduling).
    let mut flags = "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 \
                     -C llvm-args=-pre-RA-sched=source"
        .to_string();
    for arg in [
        "--shared-memory",
        "--import-memory",
        &format!("--max-memory={THREADS_MAX_MEMORY}"),
        "--export=__wasm_init_tls",
        "--export=__tls_size",
        "--export=__tls_align",
        "--export=__tls_base",
    ] {
        flags += &format!(" -C link-arg={arg}");
    }
    run(Command::new("cargo")
        .arg(format!("+{nightly}"))
        .args([
            "build",
            "--locked",
            "-Z",
            "build-std=panic_abort,std",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
            "-p",
            "clip-surgery-worker",
            "--bin",
            "worker",
            "--no-default-features",
            "--features",
            features,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root())
        // Not the outer build's: these replace .cargo/config.toml's target rustflags.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", flags))?;
    let wasm = target_dir.join("wasm32-unknown-unknown/wasm-release/worker.wasm");
    let _ = std::fs::remove_dir_all(out);
    run(Command::new("wasm-bindgen")
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            "worker",
            "--out-dir",
        ])
        .arg(out)
        .arg(&wasm)
        .env("PATH", tool_path()))?;
    let bg = out.join("worker_bg.wasm");
    // Features (threads, SIMD, …) come from the module's target-features section, as trunk's
    // own wasm-opt run relies on.
    run(Command::new("wasm-opt")
        .arg("-Oz")
        .arg(&bg)
        .arg("-o")
        .arg(&bg)
        .env("PATH", tool_path()))
}

/// A Python virtual environment in `target/<name>` with `requirements` installed (once).
fn venv(name: &str, requirements: &str) -> Result<PathBuf> {
    let venv = root().join("target").join(name);
    let python = venv.join("bin/python");
    let done = venv.join(".installed");
    let wanted = std::fs::read_to_string(root().join(requirements))
        .map_err(|e| format!("{requirements}: {e}"))?;
    if std::fs::read_to_string(&done).ok().as_deref() != Some(wanted.as_str()) {
        if !python.exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "-r"])
            .arg(root().join(requirements)))?;
        std::fs::write(&done, wanted).map_err(|e| e.to_string())?;
    }
    Ok(python)
}

fn fixtures() -> Result {
    let python = venv("refvenv", "tests/reference/requirements.txt")?;
    for script in [
        "tests/reference/make_tokenizer.py",
        "tests/reference/make_fixtures.py",
    ] {
        run(Command::new(&python).arg(script).current_dir(root()))?;
    }
    Ok(())
}

/// `cargo xtask bench-web`: everything `bench/web/bench.mjs` needs, then the bench. Inputs are
/// kept in `<target>/bench-web/` and made again only when missing.
fn bench_web(args: &[String]) -> Result {
    let mut bench_args = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--runs" | "--threads" | "--quant" | "--simd" => {
                let value = args.next().ok_or(format!("{flag} needs a value"))?;
                bench_args.extend([flag.clone(), value.clone()]);
            }
            other => return Err(format!("unknown bench-web flag {other:?}\n\n{USAGE}")),
        }
    }
    setup(Needs {
        lavapipe: false,
        ..Needs::ALL
    })?;
    build()?;
    run(cargo().args([
        "build",
        "--locked",
        "--release",
        "-p",
        "clip-cli",
        "--bin",
        "clip-surgery",
    ]))?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let cli = target.join("release/clip-surgery");
    let out = target.join("bench-web");
    let model = out.join("vit-b-16");
    if !model.join("config.json").exists() {
        run(Command::new(&cli)
            .args(["random", "--preset", "vit-b-16", "--to"])
            .arg(&model))?;
    }
    let packs = out.join("packs");
    // The int8 pack as it is, and with the app's default labels' text features.
    for (name, bank) in [("int8", None), ("int8-bank", Some(DEFAULT_LABELS))] {
        if !packs.join(name).join("manifest.json").exists() {
            let mut convert = Command::new(&cli);
            convert
                .arg("convert")
                .arg("--from")
                .arg(&model)
                .arg("--to")
                .arg(packs.join(name))
                .args(["--quant", "int8"]);
            if let Some(labels) = bank {
                convert.args(["--text-bank", labels]);
            }
            run(&mut convert)?;
        }
    }
    let onnx = out.join("onnx");
    if !onnx.join("export.json").exists() {
        let python = venv("benchvenv", "bench/requirements.txt")?;
        run(Command::new(python)
            .arg(root().join("bench/onnx_export.py"))
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&onnx))?;
    }
    let web = root().join("bench/web");
    if !web.join("node_modules/onnxruntime-web").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web))?;
    }
    run(Command::new("node")
        .arg("bench.mjs")
        .arg("--dist")
        .arg(root().join("dist"))
        .arg("--model")
        .arg(&model)
        .arg("--packs")
        .arg(&packs)
        .arg("--onnx")
        .arg(&onnx)
        .arg("--images")
        .arg(root().join("tests/fixtures/images"))
        .arg("--out")
        .arg(out.join("results.json"))
        .args(&bench_args)
        .current_dir(&web))
}

/// The nightly for what stable cannot build: cargo-fuzz (sanitizers) and the threaded worker
/// (`-Z build-std`); pinned by date so that a run here and a run elsewhere build the same way.
const NIGHTLY: &str = "nightly-2026-05-19";
const CARGO_FUZZ_VERSION: &str = "0.13.2";
const FUZZ_TARGETS: [&str; 6] = [
    "safetensors",
    "config_json",
    "manifest",
    "shard",
    "image",
    "url_params",
];

/// The pinned nightly: installed under its dated name, or as `nightly` if that is the same
/// build (machines here come with it); installed otherwise.
fn nightly() -> Result<String> {
    let date = NIGHTLY.trim_start_matches("nightly-");
    for name in [NIGHTLY, "nightly"] {
        let version = output("rustc", &[&format!("+{name}"), "-V"]).unwrap_or_default();
        if version.contains(date) {
            return Ok(name.to_string());
        }
    }
    run(Command::new("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))?;
    Ok(NIGHTLY.to_string())
}

/// `cargo xtask fuzz [TARGET…] [--seconds N]`: libFuzzer on each target for N seconds, starting
/// from the seeds `clip-fuzz` writes; crashes land in `fuzz/artifacts/<target>/`.
fn fuzz(args: &[String]) -> Result {
    let mut seconds = "600".to_string();
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().ok_or("--seconds needs a value")?.clone(),
            t if FUZZ_TARGETS.contains(&t) => targets.push(t.to_string()),
            other => return Err(format!("unknown fuzz target or flag {other:?}\n\n{USAGE}")),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let toolchain = nightly()?;
    let have = output("cargo", &["fuzz", "--version"]).unwrap_or_default();
    if !have.contains(CARGO_FUZZ_VERSION) {
        run(cargo().args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ]))?;
    }
    let fuzz_dir = root().join("fuzz");
    let corpus = fuzz_dir.join("corpus");
    run(cargo()
        .args([
            "run",
            "--locked",
            "--release",
            "-p",
            "clip-fuzz",
            "--example",
            "seeds",
            "--",
        ])
        .arg(&corpus))?;
    for target in &targets {
        let mut fuzz = Command::new("cargo");
        // libFuzzer adds what it finds to the first folder; the committed regressions (a folder
        // git has only once a target has one) are read as well.
        fuzz.arg(format!("+{toolchain}"))
            .args(["fuzz", "run", target])
            .arg(corpus.join(target));
        let regressions = root().join("crates/clip-fuzz/corpus").join(target);
        if regressions.is_dir() {
            fuzz.arg(regressions);
        }
        run(fuzz
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096",
            ])
            .current_dir(&fuzz_dir)
            .env("PATH", tool_path()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_banks_the_apps_default_labels() {
        let params = std::fs::read_to_string(root().join("src/params.rs")).unwrap();
        let declared = format!("pub const DEFAULT_LABELS: &str = \"{DEFAULT_LABELS}\";");
        assert!(
            params.contains(&declared),
            "src/params.rs no longer has {declared}"
        );
    }

    #[test]
    fn lockfile_pins_wasm_bindgen() {
        let v = lockfile_version("wasm-bindgen").unwrap();
        assert_eq!(
            v, "0.2.130",
            "Trunk.toml's [tools] wasm_bindgen must follow Cargo.lock"
        );
        let trunk_toml = std::fs::read_to_string(root().join("Trunk.toml")).unwrap();
        assert!(trunk_toml.contains(&format!("wasm_bindgen = \"{v}\"")));
    }

    #[test]
    fn fuzz_targets_are_the_harnesses() {
        let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
        let harnesses: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|name| *name != "clip-surgery-fuzz")
            .collect();
        assert_eq!(harnesses, FUZZ_TARGETS, "fuzz/Cargo.toml's [[bin]]s");
    }

    /// RFC 4648's test vectors.
    #[test]
    fn base64_is_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    /// `finish` on a made-up dist/: the docs site copied, the pack bundled and named by the
    /// meta tag (once, however often it runs), every shell file precached with the integrity a
    /// browser computes (sha256 of "abc"), docs/bench/the worker itself not; the version
    /// changes with any file and is stable otherwise.
    #[test]
    fn finish_bundles_and_lists_the_precache() {
        let dir = env::temp_dir().join(format!("xtask-finish-{}", std::process::id()));
        let (dist, pack) = (dir.join("dist"), dir.join("pack"));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in [
            ("dist/index.html", "<html><head>\n  </head></html>\n"),
            ("dist/app_bg.wasm", "abc"),
            ("dist/www/bench.html", "bench"),
            ("dist/mt/worker.js", "mt"),
            ("dist/mt-relaxed/worker.js", "relaxed"),
            ("pack/manifest.json", "{}"),
            ("pack/shard-000.bin", "weights"),
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::copy(root().join("www/sw.js"), dist.join("sw.js")).unwrap();
        let build_line = |dist: &Path| {
            let sw = std::fs::read_to_string(dist.join("sw.js")).unwrap();
            sw.lines()
                .find(|l| l.starts_with("/* BUILD */"))
                .unwrap()
                .to_string()
        };
        finish(&dist, Some(&pack)).unwrap();
        finish(&dist, Some(&pack)).unwrap();
        let first = build_line(&dist);
        assert!(dist.join("docs/index.html").is_file());
        assert!(dist.join("model/shard-000.bin").is_file());
        let html = std::fs::read_to_string(dist.join("index.html")).unwrap();
        assert_eq!(
            html.matches("name=\"clip-surgery-model\" content=\"model/\"")
                .count(),
            1
        );
        let abc = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
        assert!(
            first.contains(&format!("[\"app_bg.wasm\", \"{abc}\"]")),
            "{first}"
        );
        for (listed, path) in [
            (true, "\"index.html\""),
            (true, "\"mt/worker.js\""),
            (true, "\"mt-relaxed/worker.js\""),
            (true, "\"model/shard-000.bin\""),
            (false, "\"www/bench.html\""),
            (false, "\"docs/"),
            (false, "\"sw.js\""),
        ] {
            assert_eq!(first.contains(path), listed, "{path} in {first}");
        }
        let version = |line: &str| line.split('"').nth(1).unwrap().to_string();
        std::fs::write(dist.join("app_bg.wasm"), "abd").unwrap();
        finish(&dist, None).unwrap();
        let second = build_line(&dist);
        assert_ne!(version(&first), version(&second));
        assert!(
            second.contains("\"model/shard-000.bin\""),
            "the bundle stays"
        );
        finish(&dist, None).unwrap();
        assert_eq!(build_line(&dist), second);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
