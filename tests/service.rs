//! The service files: the checked-in templates are what the render
//! functions produce, the rendered files carry the keys we rely on and pass
//! the real tools (`systemd-analyze verify`, Python's plistlib), and
//! `install` writes where the service managers look, refusing to clobber.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, BIN};
use stackunderflow_live::service::{
    self, install, plan, render_launchd_plist, render_no_userns_drop_in, render_systemd_unit,
    InstallOptions, Outcome, Platform, Sandbox, ServiceError, UNIT_NAME,
};

fn repo_file(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// `section -> key -> values` of a systemd unit; comments skipped, repeated
/// keys kept in order.
fn unit_keys(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value line");
        out.entry(section.clone())
            .or_default()
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    out
}

fn one<'a>(keys: &'a BTreeMap<String, Vec<String>>, k: &str) -> &'a str {
    match keys.get(k).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{k}: expected one value, got {other:?}"),
    }
}

/// Options for a fake home under `dir`, with the given environment.
fn opts_in(platform: Platform, vars: &[(&str, &Path)]) -> InstallOptions {
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    let mut o = InstallOptions::from_vars(platform, PathBuf::from(BIN), |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    o.sandbox = Sandbox::Full;
    o
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn checked_in_files_are_what_render_produces() {
    let home = Path::new("/home/someone");
    assert_eq!(
        render_systemd_unit(&home.join(".cargo/bin/stackunderflow-live"), home),
        repo_file("systemd/stackunderflow-live.service")
    );
    assert_eq!(
        render_launchd_plist(
            Path::new(service::BIN_PLACEHOLDER),
            Path::new(service::HOME_PLACEHOLDER)
        ),
        repo_file("systemd/com.stackunderflow.live.plist")
    );
    assert_eq!(
        render_no_userns_drop_in(),
        repo_file("systemd/no-userns.conf")
    );
}

#[test]
fn unit_has_the_keys_we_rely_on() {
    let unit = render_systemd_unit(
        Path::new("/opt/sul/stackunderflow-live"),
        Path::new("/home/u"),
    );
    let keys = unit_keys(&unit);
    let svc = &keys["Service"];
    assert_eq!(one(svc, "ExecStart"), "/opt/sul/stackunderflow-live");
    for (k, v) in [
        ("Type", "exec"),
        ("Restart", "on-failure"),
        ("RestartSec", "5s"),
        ("ExecReload", "kill -HUP $MAINPID"),
        ("NoNewPrivileges", "yes"),
        ("PrivateUsers", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("ReadWritePaths", "%h/.local/share/stackunderflow-live"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
        ("Environment", "XDG_DATA_HOME=%h/.local/share"),
    ] {
        assert_eq!(one(svc, k), v, "{k}");
    }
    assert!(
        !svc.contains_key("ProtectControlGroups"),
        "fails user units with PrivateUsers="
    );
    assert_eq!(one(&keys["Install"], "WantedBy"), "default.target");
    // The settings examples stay commented out.
    for var in ["LISTEN", "LOG_LEVEL", "MAX_CLIENTS", "ALLOW_ORIGIN"] {
        assert!(
            unit.contains(&format!("\n#Environment=STACKUNDERFLOW_LIVE_{var}=")),
            "{var}"
        );
    }
    // The store directory the sandbox leaves writable is the one made before it.
    assert_eq!(
        one(svc, "ExecStartPre"),
        "+mkdir -p %h/.local/share/stackunderflow-live"
    );
}

#[test]
fn drop_in_switches_off_every_namespace_setting_of_the_unit() {
    let unit = unit_keys(&render_systemd_unit(Path::new("/x"), Path::new("/home/u")));
    let drop_in = unit_keys(&render_no_userns_drop_in());
    let off = &drop_in["Service"];
    // Every setting of the unit that needs a user namespace in a user manager.
    for k in [
        "PrivateUsers",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
    ] {
        assert!(unit["Service"].contains_key(k), "unit lacks {k}");
        assert_eq!(one(off, k), "no", "{k}");
    }
    assert_eq!(
        one(off, "ReadWritePaths"),
        "",
        "an empty value resets the list"
    );
    for k in [
        "PrivateDevices",
        "ProtectClock",
        "ProtectHostname",
        "PrivateIPC",
    ] {
        assert!(
            !unit["Service"].contains_key(k),
            "{k} would need the drop-in too"
        );
    }
}

#[test]
fn exec_start_is_relative_to_home_and_escaped() {
    let home = Path::new("/home/u");
    let exec = |bin: &str| {
        let keys = unit_keys(&render_systemd_unit(Path::new(bin), home));
        one(&keys["Service"], "ExecStart").to_string()
    };
    assert_eq!(exec("/home/u/bin/sul"), "%h/bin/sul");
    assert_eq!(exec("/home/u/my tools/sul"), "\"%h/my tools/sul\"");
    assert_eq!(exec("/srv/100%/$x"), "\"/srv/100%%/$x\"");
}

/// Loads a plist with Python's plistlib and returns it as JSON, or `None`
/// (with the reason printed) when python3 is not installed.
fn plist_as_json(path: &Path) -> Option<serde_json::Value> {
    let out = match Command::new("python3")
        .args([
            "-c",
            "import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping the plistlib check: cannot run python3: {e}");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "plistlib rejects {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn plist_is_well_formed_and_escaped() {
    let dir = TempDir::new("plist");
    let home = dir.path().join("Tom & <Jerry>");
    let bin = home.join("bin dir/stackunderflow-live");
    let text = render_launchd_plist(&bin, &home);
    assert!(!text.contains("__BIN__") && !text.contains("__HOME__"));
    let path = dir.path().join("com.stackunderflow.live.plist");
    fs::write(&path, &text).unwrap();

    if let Ok(out) = Command::new("plutil").arg("-lint").arg(&path).output() {
        assert!(out.status.success(), "plutil: {out:?}");
    }
    // Structural check that needs no tool: one root dict, balanced tags.
    for tag in ["plist", "dict", "array"] {
        assert_eq!(
            text.matches(&format!("<{tag}>")).count() + text.matches(&format!("<{tag} ")).count(),
            text.matches(&format!("</{tag}>")).count(),
            "<{tag}> balanced"
        );
    }
    let Some(p) = plist_as_json(&path) else {
        return;
    };
    let log = format!(
        "{}/Library/Logs/stackunderflow-live/stackunderflow-live.log",
        home.display()
    );
    assert_eq!(p["Label"], "com.stackunderflow.live");
    assert_eq!(
        p["ProgramArguments"],
        serde_json::json!([bin.to_str().unwrap()])
    );
    assert_eq!(p["RunAtLoad"], true);
    assert_eq!(p["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(p["StandardOutPath"], log.as_str());
    assert_eq!(p["StandardErrorPath"], log.as_str());
    assert_eq!(p["Umask"], 0o077);
    assert!(
        p.get("EnvironmentVariables").is_none(),
        "the example stays commented out"
    );
}

#[test]
fn systemd_install_lands_in_xdg_config_home_and_refuses_to_clobber() {
    let dir = TempDir::new("svc-xdg");
    let home = dir.path().join("home");
    let cfg = dir.path().join("cfg");
    fs::create_dir_all(&home).unwrap();
    let opts = opts_in(
        Platform::Systemd,
        &[("HOME", &home), ("XDG_CONFIG_HOME", &cfg)],
    );

    let report = install(&opts).unwrap();
    let unit = cfg.join("systemd/user").join(UNIT_NAME);
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].0.path, unit);
    assert_eq!(report.files[0].1, Outcome::Created);
    assert_eq!(
        fs::read_to_string(&unit).unwrap(),
        render_systemd_unit(Path::new(BIN), &home)
    );
    assert_eq!(
        fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        report.commands,
        ["systemctl --user daemon-reload && systemctl --user enable --now stackunderflow-live"]
    );
    assert!(report.to_string().contains(&unit.display().to_string()));
    assert!(!home.join(".config").exists(), "XDG_CONFIG_HOME wins");

    // Same contents again: nothing to do.
    let again = install(&opts).unwrap();
    assert_eq!(again.files[0].1, Outcome::Unchanged);

    // Someone edited it: refuse, and leave their file alone.
    fs::write(&unit, "[Service]\nExecStart=/their/own\n").unwrap();
    let err = install(&opts).unwrap_err();
    assert!(
        matches!(err, ServiceError::Exists(ref p) if *p == unit),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        fs::read_to_string(&unit).unwrap(),
        "[Service]\nExecStart=/their/own\n"
    );
    let mut dry = opts.clone();
    dry.dry_run = true;
    assert!(
        matches!(install(&dry), Err(ServiceError::Exists(_))),
        "a dry run fails where the real one would"
    );

    let mut forced = opts.clone();
    forced.force = true;
    let report = install(&forced).unwrap();
    assert_eq!(report.files[0].1, Outcome::Replaced);
    assert!(report.commands[0].contains("systemctl --user restart stackunderflow-live"));
    assert_eq!(
        fs::read_to_string(&unit).unwrap(),
        render_systemd_unit(Path::new(BIN), &home)
    );
    assert_eq!(
        listing(unit.parent().unwrap()),
        [UNIT_NAME],
        "no temporary file left"
    );
}

#[test]
fn systemd_install_defaults_to_dot_config() {
    let dir = TempDir::new("svc-home");
    let home = dir.path().to_path_buf();
    // A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    let opts = opts_in(
        Platform::Systemd,
        &[("HOME", &home), ("XDG_CONFIG_HOME", Path::new("rel/cfg"))],
    );
    install(&opts).unwrap();
    assert!(home.join(".config/systemd/user").join(UNIT_NAME).is_file());
}

#[test]
fn dry_run_writes_nothing() {
    let dir = TempDir::new("svc-dry");
    let mut opts = opts_in(Platform::Systemd, &[("HOME", dir.path())]);
    opts.dry_run = true;
    let report = install(&opts).unwrap();
    assert!(report.dry_run);
    assert_eq!(report.files[0].1, Outcome::Created);
    assert!(report
        .dirs
        .contains(&dir.path().join(".config/systemd/user")));
    assert!(report.to_string().contains("would write"));
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn sandbox_fallback_adds_the_drop_in() {
    let dir = TempDir::new("svc-userns");
    let mut opts = opts_in(Platform::Systemd, &[("HOME", dir.path())]);
    opts.sandbox = Sandbox::NoUserNamespaces;
    let files = plan(&opts).unwrap();
    assert_eq!(files.len(), 2);
    install(&opts).unwrap();
    let drop_in = dir
        .path()
        .join(".config/systemd/user/stackunderflow-live.service.d/no-userns.conf");
    assert_eq!(
        fs::read_to_string(drop_in).unwrap(),
        render_no_userns_drop_in()
    );

    // Back to the full sandbox: the old drop-in is reported, not deleted.
    opts.sandbox = Sandbox::Full;
    let report = install(&opts).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("no-userns.conf")),
        "{report}"
    );

    // Adding the drop-in to a unit already installed needs a restart.
    let dir = TempDir::new("svc-userns2");
    let mut opts = opts_in(Platform::Systemd, &[("HOME", dir.path())]);
    install(&opts).unwrap();
    opts.sandbox = Sandbox::NoUserNamespaces;
    let report = install(&opts).unwrap();
    assert_eq!(report.files[0].1, Outcome::Unchanged);
    assert_eq!(report.files[1].1, Outcome::Created);
    assert!(report.commands[0].contains("restart"), "{report}");
}

#[test]
fn launchd_install_writes_absolute_paths_and_the_log_folder() {
    let dir = TempDir::new("svc-launchd");
    let home = dir.path().to_path_buf();
    let opts = opts_in(Platform::Launchd, &[("HOME", &home)]);
    let report = install(&opts).unwrap();
    let plist = home.join("Library/LaunchAgents/com.stackunderflow.live.plist");
    assert_eq!(report.files[0].0.path, plist);
    assert!(home.join("Library/Logs/stackunderflow-live").is_dir());
    let text = fs::read_to_string(&plist).unwrap();
    assert_eq!(text, render_launchd_plist(Path::new(BIN), &home));
    assert!(text.contains(&format!("<string>{BIN}</string>")));
    assert_eq!(
        report.commands,
        [format!(
            "launchctl bootstrap gui/$(id -u) {}",
            plist.display()
        )]
    );
    if let Some(p) = plist_as_json(&plist) {
        assert_eq!(p["ProgramArguments"][0], BIN);
    }

    fs::write(&plist, "<plist/>").unwrap();
    let mut forced = opts.clone();
    forced.force = true;
    let report = install(&forced).unwrap();
    assert!(
        report.commands[0].starts_with("launchctl bootout gui/$(id -u)/com.stackunderflow.live")
    );
}

#[test]
fn clear_errors() {
    let none = |_: &str| None::<OsString>;
    let err = InstallOptions::from_vars(Platform::Systemd, PathBuf::from(BIN), none).unwrap_err();
    assert!(matches!(err, ServiceError::NoHome), "{err}");

    let dir = TempDir::new("svc-err");
    let mut opts = opts_in(Platform::Systemd, &[("HOME", dir.path())]);
    opts.bin = PathBuf::from("target/debug/stackunderflow-live");
    let err = install(&opts).unwrap_err();
    assert!(err.to_string().contains("not absolute"), "{err}");
    opts.bin = PathBuf::from("/opt/it's/stackunderflow-live");
    let err = install(&opts).unwrap_err();
    assert!(err.to_string().contains("quotes"), "{err}");
    opts.bin = dir.path().join("missing");
    let err = install(&opts).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(listing(dir.path()).is_empty());
}

/// Runs `systemd-analyze --user verify` on `unit_dir/stackunderflow-live.service`
/// and returns its exit status and combined output.
fn analyze(unit: &Path, home: &Path, runtime: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify", "--man=no"])
        .arg(unit)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", runtime)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    }
    let dir = TempDir::new("svc-verify");
    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    let units = dir.path().join("units");
    for d in [&home, &runtime, &units] {
        fs::create_dir_all(d).unwrap();
    }
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let unit = units.join(UNIT_NAME);

    // Canary: a unit with a key systemd does not know must be reported.
    // If it is not, verify cannot run here and passing would prove nothing.
    fs::write(
        &unit,
        render_systemd_unit(Path::new(BIN), &home) + "NoSuchKeyAnywhere=1\n",
    )
    .unwrap();
    let (_, canary) = analyze(&unit, &home, &runtime);
    if !canary.contains("NoSuchKeyAnywhere") {
        eprintln!("skipping: systemd-analyze --user verify cannot run here: {canary}");
        return;
    }

    let assert_clean = |what: &str| {
        let (ok, text) = analyze(&unit, &home, &runtime);
        assert!(ok, "{what}: systemd-analyze failed:\n{text}");
        for bad in ["Unknown", "Failed", "ignoring", "not executable", "rror"] {
            assert!(!text.contains(bad), "{what}: {bad:?} in:\n{text}");
        }
    };

    // The unit as install-service writes it for the test binary.
    fs::write(&unit, render_systemd_unit(Path::new(BIN), &home)).unwrap();
    assert_clean("unit");

    // A binary under HOME, in a folder whose name needs quoting and escapes.
    let odd = home.join("my tools 100% $x;y");
    fs::create_dir_all(&odd).unwrap();
    let link = odd.join("stackunderflow-live");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let text = render_systemd_unit(&link, &home);
    assert!(
        text.contains("ExecStart=\"%h/my tools 100%% $x;y/stackunderflow-live\"\n"),
        "{text}"
    );
    fs::write(&unit, text).unwrap();
    assert_clean("unit with an odd binary path");

    // With the fallback drop-in (verify reads <unit>.d/ next to the unit).
    let drop_in_dir = units.join(format!("{UNIT_NAME}.d"));
    fs::create_dir_all(&drop_in_dir).unwrap();
    fs::write(
        drop_in_dir.join("no-userns.conf"),
        render_no_userns_drop_in(),
    )
    .unwrap();
    assert_clean("unit with no-userns.conf");

    // And a missing binary is caught, so the checks above were real.
    fs::write(
        &unit,
        render_systemd_unit(&dir.path().join("nope/stackunderflow-live"), &home),
    )
    .unwrap();
    let (ok, text) = analyze(&unit, &home, &runtime);
    assert!(!ok && text.contains("not executable"), "{text}");
}

#[test]
fn grafana_dashboard_queries_our_metrics() {
    let dash: serde_json::Value =
        serde_json::from_str(&repo_file("examples/grafana-dashboard.json")).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets"))
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect();
    for e in &exprs {
        assert!(e.contains("stackunderflow_live_"), "{e}");
    }
    for needed in [
        "sum(rate(stackunderflow_live_cost_usd_total[5m])) * 3600",
        "stackunderflow_live_tokens_total",
        "stackunderflow_live_clients{",
        "stackunderflow_live_clients_reaped_total",
        "stackunderflow_live_commit_to_send_seconds_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no panel uses {needed}"
        );
    }
}
