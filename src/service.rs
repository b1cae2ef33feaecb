//! Running the daemon as a per-user service: the systemd user unit (Linux)
//! and the launchd agent (macOS), and installing the right one.
//!
//! Owns the service files. The templates checked in under `systemd/` are
//! the one source of truth: they are embedded here with `include_str!` and
//! the render functions only fill in the binary path and home directory, so
//! the files a newcomer copies by hand and the ones `install-service`
//! writes cannot drift apart.
//!
//! Runs once on the caller's thread (the `install-service` subcommand),
//! instead of the daemon. It never starts, stops or signals a service: it
//! writes the files and hands back the commands for the user to run. It
//! writes nothing outside the service manager's own directories (and, on
//! macOS, the log folder launchd appends to).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The systemd unit name; `systemctl --user ... stackunderflow-live` finds it.
pub const UNIT_NAME: &str = "stackunderflow-live.service";

/// The launchd job label, also the plist's file name without `.plist`.
pub const LAUNCHD_LABEL: &str = "com.stackunderflow.live";

/// File name of the drop-in that switches off the unit's namespace sandbox.
pub const NO_USERNS_DROP_IN: &str = "no-userns.conf";

/// The checked-in user unit, usable as is: it runs the binary where
/// `cargo install` puts it.
const UNIT_TEMPLATE: &str = include_str!("../systemd/stackunderflow-live.service");

/// The checked-in drop-in for hosts without unprivileged user namespaces.
const NO_USERNS_TEMPLATE: &str = include_str!("../systemd/no-userns.conf");

/// The checked-in launchd agent, with placeholders because launchd expands
/// neither `~` nor `$HOME`.
const PLIST_TEMPLATE: &str = include_str!("../systemd/com.stackunderflow.live.plist");

/// The `ExecStart=` line of the template; rendering replaces its value.
const TEMPLATE_EXEC_LINE: &str = "ExecStart=%h/.cargo/bin/stackunderflow-live\n";

/// Stands for the binary's absolute path in the plist template.
pub const BIN_PLACEHOLDER: &str = "__BIN__";

/// Stands for the home directory in the plist template.
pub const HOME_PLACEHOLDER: &str = "__HOME__";

/// Mode of the written files. launchd refuses a plist that others can
/// write, and the process umask of whoever runs the installer is unknown.
const FILE_MODE: u32 = 0o644;

/// Which service manager the files are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux: a systemd user unit, driven with `systemctl --user`.
    Systemd,
    /// macOS: a launchd agent in `~/Library/LaunchAgents`.
    Launchd,
}

impl Platform {
    /// The service manager of the OS this binary was built for, if any.
    pub fn current() -> Option<Platform> {
        if cfg!(target_os = "macos") {
            Some(Platform::Launchd)
        } else if cfg!(target_os = "linux") {
            Some(Platform::Systemd)
        } else {
            None
        }
    }

    /// `systemd` / `launchd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Systemd => "systemd",
            Platform::Launchd => "launchd",
        }
    }
}

/// How much of the systemd unit's sandbox to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// Look at this host: keep the whole sandbox unless unprivileged user
    /// namespaces are blocked, then add the [`NO_USERNS_DROP_IN`] drop-in.
    Auto,
    /// The whole sandbox, no drop-in.
    Full,
    /// Add the drop-in that switches off the settings needing a user
    /// namespace (the seccomp filters stay).
    NoUserNamespaces,
}

/// What [`install`] and [`plan`] need. Build it with
/// [`InstallOptions::from_env`], then set the flags.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Which files to write.
    pub platform: Platform,
    /// The binary the service runs; absolute.
    pub bin: PathBuf,
    /// The user's home directory; absolute.
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `~/.config`: the systemd unit goes in its
    /// `systemd/user/`.
    pub config_home: PathBuf,
    /// Replace an existing service file that differs from the one this build writes.
    pub force: bool,
    /// Show what would be written and the commands to run, but write nothing.
    pub dry_run: bool,
    /// How much of the systemd sandbox to keep (ignored for launchd).
    pub sandbox: Sandbox,
}

impl InstallOptions {
    /// Options for this platform and this process: the running binary,
    /// `$HOME` and `$XDG_CONFIG_HOME`; no force, no dry run, sandbox `Auto`.
    pub fn from_env() -> Result<InstallOptions, ServiceError> {
        let platform = Platform::current().ok_or(ServiceError::Unsupported)?;
        let bin = std::env::current_exe().map_err(ServiceError::CurrentExe)?;
        InstallOptions::from_vars(platform, bin, |k| std::env::var_os(k))
    }

    /// Like [`from_env`](Self::from_env), with the platform, binary and
    /// environment given (for tests, and for installing another binary).
    pub fn from_vars(
        platform: Platform,
        bin: PathBuf,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<InstallOptions, ServiceError> {
        let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = set("HOME")
            .filter(|h| h.is_absolute())
            .ok_or(ServiceError::NoHome)?;
        // The XDG spec says a relative value is invalid and must be ignored.
        let config_home = set("XDG_CONFIG_HOME")
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        Ok(InstallOptions {
            platform,
            bin,
            home,
            config_home,
            force: false,
            dry_run: false,
            sandbox: Sandbox::Auto,
        })
    }
}

/// One file the installer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFile {
    /// Where it goes.
    pub path: PathBuf,
    /// Its full text.
    pub contents: String,
}

/// What happened to a file (or would have, in a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist.
    Created,
    /// It existed with other contents and `force` was set.
    Replaced,
    /// It already held exactly these contents; not touched.
    Unchanged,
}

impl Outcome {
    fn verb(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Created, false) => "wrote",
            (Outcome::Created, true) => "would write",
            (Outcome::Replaced, false) => "replaced",
            (Outcome::Replaced, true) => "would replace",
            (Outcome::Unchanged, _) => "unchanged",
        }
    }
}

/// The result of [`install`]. Its `Display` is the text to show the user.
#[derive(Debug, Clone)]
pub struct InstallReport {
    /// The service manager the files are for.
    pub platform: Platform,
    /// True when nothing was written.
    pub dry_run: bool,
    /// Directories created (or that would be).
    pub dirs: Vec<PathBuf>,
    /// Each file and what happened to it.
    pub files: Vec<(ServiceFile, Outcome)>,
    /// Shell commands, in order, that load and start the service.
    pub commands: Vec<String>,
    /// Things the user should know (sandbox fallback, unusual paths).
    pub notes: Vec<String>,
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run {
            "would create"
        } else {
            "created"
        };
        for d in &self.dirs {
            writeln!(f, "{would} {}", d.display())?;
        }
        for (file, outcome) in &self.files {
            writeln!(f, "{} {}", outcome.verb(self.dry_run), file.path.display())?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        writeln!(f, "To load and start it, run:")?;
        for c in &self.commands {
            writeln!(f, "  {c}")?;
        }
        Ok(())
    }
}

/// Why installing failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// This OS has neither systemd nor launchd support here.
    Unsupported,
    /// The path of the running binary could not be found.
    CurrentExe(io::Error),
    /// `$HOME` is unset, empty or relative.
    NoHome,
    /// The binary path cannot be written into a service file.
    BadBinary {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A service file exists with other contents and `force` was not set.
    Exists(PathBuf),
    /// Reading, creating or writing a file or directory failed.
    Io(PathBuf, io::Error),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Unsupported => f.write_str(
                "install-service knows systemd (Linux) and launchd (macOS), not this OS; \
                 run the binary under your own supervisor",
            ),
            ServiceError::CurrentExe(e) => write!(f, "cannot find this binary's path: {e}"),
            ServiceError::NoHome => f.write_str(
                "$HOME is unset or not absolute; cannot tell where the service file goes",
            ),
            ServiceError::BadBinary { path, reason } => {
                write!(f, "cannot run {} as a service: {reason}", path.display())
            }
            ServiceError::Exists(p) => write!(
                f,
                "{} exists and differs from the file this build writes; \
                 pass --force to replace it (--print shows the new one)",
                p.display()
            ),
            ServiceError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::CurrentExe(e) | ServiceError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// The systemd user unit that runs `bin`. A `bin` under `home` is written
/// relative to `%h`, so the file stays right if the home directory moves;
/// spaces, `%`, quotes and backslashes are escaped for systemd.
///
/// `render_systemd_unit(&home.join(".cargo/bin/stackunderflow-live"), home)`
/// is byte for byte `systemd/stackunderflow-live.service`.
pub fn render_systemd_unit(bin: &Path, home: &Path) -> String {
    let exec = format!("ExecStart={}\n", systemd_exec_path(bin, home));
    UNIT_TEMPLATE.replacen(TEMPLATE_EXEC_LINE, &exec, 1)
}

/// The drop-in that switches off the unit's namespace sandbox
/// (`systemd/no-userns.conf`, verbatim).
pub fn render_no_userns_drop_in() -> String {
    NO_USERNS_TEMPLATE.to_string()
}

/// The launchd agent that runs `bin` and logs under
/// `home/Library/Logs/stackunderflow-live/`, with both paths XML-escaped.
///
/// `render_launchd_plist(Path::new("__BIN__"), Path::new("__HOME__"))` is
/// byte for byte `systemd/com.stackunderflow.live.plist`.
pub fn render_launchd_plist(bin: &Path, home: &Path) -> String {
    let bin = xml_escape(&bin.to_string_lossy());
    let home = xml_escape(&home.to_string_lossy());
    fill(
        PLIST_TEMPLATE,
        &[(BIN_PLACEHOLDER, &bin), (HOME_PLACEHOLDER, &home)],
    )
}

/// Where the systemd unit goes: `<config_home>/systemd/user/stackunderflow-live.service`.
pub fn systemd_unit_path(config_home: &Path) -> PathBuf {
    config_home.join("systemd").join("user").join(UNIT_NAME)
}

/// Where the launchd agent goes: `~/Library/LaunchAgents/com.stackunderflow.live.plist`.
pub fn launchd_plist_path(home: &Path) -> PathBuf {
    home.join("Library")
        .join("LaunchAgents")
        .join(format!("{LAUNCHD_LABEL}.plist"))
}

/// The folder the launchd agent logs into.
pub fn launchd_log_dir(home: &Path) -> PathBuf {
    home.join("Library")
        .join("Logs")
        .join("stackunderflow-live")
}

/// The files `install` would write for these options, without touching the
/// disk (beyond reading `/proc/sys` for [`Sandbox::Auto`]). `--print` shows these.
pub fn plan(opts: &InstallOptions) -> Result<Vec<ServiceFile>, ServiceError> {
    check_binary(&opts.bin, opts.platform)?;
    Ok(match opts.platform {
        Platform::Systemd => {
            let unit = systemd_unit_path(&opts.config_home);
            let mut files = vec![ServiceFile {
                contents: render_systemd_unit(&opts.bin, &opts.home),
                path: unit.clone(),
            }];
            if resolve_sandbox(opts.sandbox).1 {
                files.push(ServiceFile {
                    path: drop_in_path(&unit),
                    contents: render_no_userns_drop_in(),
                });
            }
            files
        }
        Platform::Launchd => vec![ServiceFile {
            path: launchd_plist_path(&opts.home),
            contents: render_launchd_plist(&opts.bin, &opts.home),
        }],
    })
}

/// Writes the service files for `opts.platform` (creating directories),
/// and returns what it did and the commands that load and start the
/// service. It never runs those commands.
///
/// A file that exists with the same contents is left alone; one with other
/// contents is an error unless `force`. Every check runs before the first
/// write, and each file is written to a temporary name and renamed, so a
/// refusal or a crash leaves no half-written file. With `dry_run`, every
/// check still runs (a dry run fails exactly where the real one would) but
/// nothing is created.
pub fn install(opts: &InstallOptions) -> Result<InstallReport, ServiceError> {
    let files = plan(opts)?;
    if !opts.bin.is_file() {
        return Err(ServiceError::BadBinary {
            path: opts.bin.clone(),
            reason: "no such file",
        });
    }
    let mut notes = Vec::new();

    let mut planned = Vec::with_capacity(files.len());
    for file in files {
        let outcome = match fs::read(&file.path) {
            Ok(old) if old == file.contents.as_bytes() => Outcome::Unchanged,
            Ok(_) if opts.force => Outcome::Replaced,
            Ok(_) => return Err(ServiceError::Exists(file.path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::Created,
            Err(e) => return Err(ServiceError::Io(file.path, e)),
        };
        planned.push((file, outcome));
    }

    let mut dirs: Vec<PathBuf> = planned
        .iter()
        .filter_map(|(f, _)| f.path.parent().map(Path::to_path_buf))
        .collect();
    if opts.platform == Platform::Launchd {
        dirs.push(launchd_log_dir(&opts.home));
    }
    dirs.dedup();
    dirs.retain(|d| !d.is_dir());

    if !opts.dry_run {
        for d in &dirs {
            fs::create_dir_all(d).map_err(|e| ServiceError::Io(d.clone(), e))?;
        }
        for (file, outcome) in &planned {
            if *outcome != Outcome::Unchanged {
                write_atomically(&file.path, &file.contents)?;
            }
        }
    }

    // A running service keeps its old configuration until restarted: when a
    // file replaced another, or joined one already loaded (the drop-in).
    let has = |want: Outcome| planned.iter().any(|(_, o)| *o == want);
    let changed = has(Outcome::Replaced) || (has(Outcome::Created) && has(Outcome::Unchanged));
    let commands = match opts.platform {
        Platform::Systemd => {
            let (blocker, drop_in) = resolve_sandbox(opts.sandbox);
            let unit = systemd_unit_path(&opts.config_home);
            if let Some(why) = blocker {
                notes.push(format!(
                    "{why}, so systemd cannot build the unit's filesystem sandbox; \
                     {NO_USERNS_DROP_IN} switches that part off (the seccomp filters stay)"
                ));
            } else if !drop_in && drop_in_path(&unit).exists() {
                notes.push(format!(
                    "{} from an earlier install still switches the filesystem sandbox off; \
                     delete it to turn the sandbox back on",
                    drop_in_path(&unit).display()
                ));
            }
            if opts.config_home != opts.home.join(".config") {
                notes.push(format!(
                    "systemd reads {} only if its user manager has XDG_CONFIG_HOME set too \
                     (check with `systemctl --user show-environment`)",
                    unit.parent().unwrap_or(&unit).display()
                ));
            }
            if !Path::new("/run/systemd/system").is_dir() {
                notes.push(
                    "systemd does not seem to be running on this machine \
                     (/run/systemd/system is missing); the commands below need it"
                        .into(),
                );
            }
            systemd_commands(changed)
        }
        Platform::Launchd => launchd_commands(&launchd_plist_path(&opts.home), changed),
    };
    if let Some(tree) = build_tree(&opts.bin) {
        notes.push(format!(
            "the service will run {}, inside a cargo {tree} directory; \
             `cargo install --path .` then `~/.cargo/bin/stackunderflow-live install-service --force` \
             decouples it from rebuilds",
            opts.bin.display()
        ));
    }

    Ok(InstallReport {
        platform: opts.platform,
        dry_run: opts.dry_run,
        dirs,
        files: planned,
        commands,
        notes,
    })
}

/// The commands that load the unit and (re)start it.
fn systemd_commands(changed: bool) -> Vec<String> {
    let name = UNIT_NAME.trim_end_matches(".service");
    if changed {
        // `enable --now` leaves a running service on its old unit.
        vec![format!(
            "systemctl --user daemon-reload && systemctl --user enable {name} \
             && systemctl --user restart {name}"
        )]
    } else {
        vec![format!(
            "systemctl --user daemon-reload && systemctl --user enable --now {name}"
        )]
    }
}

/// The commands that load the agent; a replaced plist is unloaded first,
/// as `bootstrap` refuses a job that is already loaded.
fn launchd_commands(plist: &Path, changed: bool) -> Vec<String> {
    let plist = shell_quote(&plist.to_string_lossy());
    let mut out = Vec::new();
    if changed {
        out.push(format!(
            "launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL} 2>/dev/null || true"
        ));
    }
    out.push(format!("launchctl bootstrap gui/$(id -u) {plist}"));
    out
}

fn drop_in_path(unit: &Path) -> PathBuf {
    let mut dir = unit.as_os_str().to_owned();
    dir.push(".d");
    PathBuf::from(dir).join(NO_USERNS_DROP_IN)
}

/// Whether the drop-in is wanted, and the host's reason when `Auto` decided so.
fn resolve_sandbox(choice: Sandbox) -> (Option<&'static str>, bool) {
    match choice {
        Sandbox::Full => (None, false),
        Sandbox::NoUserNamespaces => (None, true),
        Sandbox::Auto => {
            let why = userns_blocker(|p| fs::read_to_string(p).ok());
            (why, why.is_some())
        }
    }
}

/// Why this host would refuse a user namespace to an unprivileged process
/// (and so to the systemd user manager), judged from the kernel's knobs;
/// `None` when nothing is known to block it.
fn userns_blocker(read: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    let val = |p: &str| read(p).map(|s| s.trim().to_string());
    if val("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some("AppArmor restricts unprivileged user namespaces here");
    }
    if val("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("unprivileged user namespaces are disabled here");
    }
    if val("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user namespaces are disabled here (user.max_user_namespaces=0)");
    }
    None
}

/// Refuses binary paths a service manager would misread or reject.
fn check_binary(bin: &Path, platform: Platform) -> Result<(), ServiceError> {
    let bad = |reason| ServiceError::BadBinary {
        path: bin.to_path_buf(),
        reason,
    };
    let Some(s) = bin.to_str() else {
        return Err(bad("the path is not valid UTF-8"));
    };
    if !bin.is_absolute() {
        return Err(bad("the path is not absolute"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad("the path contains a control character"));
    }
    // systemd rejects such an ExecStart= however it is escaped ("Executable
    // name contains special characters").
    if platform == Platform::Systemd && s.contains(['"', '\'', '\\']) {
        return Err(bad(
            "systemd refuses quotes and backslashes in an executable's path; \
             move or link the binary elsewhere",
        ));
    }
    Ok(())
}

/// `debug`/`release` when `bin` sits in a cargo target directory.
fn build_tree(bin: &Path) -> Option<&'static str> {
    let parent = bin.parent()?;
    let profile = parent.file_name()?.to_str()?;
    let in_target = parent.parent()?.file_name()? == "target";
    match profile {
        "debug" if in_target => Some("target/debug"),
        "release" if in_target => Some("target/release"),
        _ => None,
    }
}

/// The `ExecStart=` value for `bin`: `%h/...` when under `home`, escaped
/// for systemd's specifier (`%`) and quoting rules.
fn systemd_exec_path(bin: &Path, home: &Path) -> String {
    let under_home = home.is_absolute() && home.parent().is_some();
    let (prefix, rest) = match bin.strip_prefix(home) {
        Ok(rel) if under_home && !rel.as_os_str().is_empty() => ("%h/", rel.to_string_lossy()),
        _ => ("", bin.to_string_lossy()),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@=".contains(c);
    let mut body = String::new();
    for c in rest.chars() {
        match c {
            '%' => body.push_str("%%"),
            // No `$$`: systemd expands variables in the arguments only, and
            // takes the executable's path literally.
            '\\' => body.push_str("\\\\"),
            '"' => body.push_str("\\\""),
            c if c.is_control() => body.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => body.push(c),
        }
    }
    if rest.chars().all(plain) {
        format!("{prefix}{body}")
    } else {
        format!("\"{prefix}{body}\"")
    }
}

/// Replaces each placeholder in one pass, so a value that happens to hold
/// another placeholder's text is left as it is.
fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (key, value) in pairs {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry these at all.
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Quotes `s` for a POSIX shell when it holds anything but plain path characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes `path` through a temporary sibling and a rename, mode 0644.
fn write_atomically(path: &Path, contents: &str) -> Result<(), ServiceError> {
    let io_err = |e| ServiceError::Io(path.to_path_buf(), e);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = fs::write(&tmp, contents)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(FILE_MODE)))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_one_exec_line() {
        assert_eq!(UNIT_TEMPLATE.matches(TEMPLATE_EXEC_LINE).count(), 1);
        assert_eq!(UNIT_TEMPLATE.matches("\nExecStart=").count(), 1);
    }

    #[test]
    fn exec_path_escaping() {
        let home = Path::new("/home/u");
        let check = |bin: &str, want: &str| {
            assert_eq!(systemd_exec_path(Path::new(bin), home), want, "{bin}");
        };
        check("/home/u/.cargo/bin/x", "%h/.cargo/bin/x");
        check("/usr/local/bin/x", "/usr/local/bin/x");
        check("/home/user2/x", "/home/user2/x");
        check("/opt/my tools/x", "\"/opt/my tools/x\"");
        check("/opt/50%/x", "\"/opt/50%%/x\"");
        check("/opt/$HOME/x", "\"/opt/$HOME/x\"");
        check("/opt/a\"b\\c/x", "\"/opt/a\\\"b\\\\c/x\"");
        check("/home/u/my bin/x", "\"%h/my bin/x\"");
        assert_eq!(
            systemd_exec_path(Path::new("/x"), Path::new("/")),
            "/x",
            "a home of / is not worth a specifier"
        );
    }

    #[test]
    fn fill_is_one_pass() {
        assert_eq!(
            fill(
                "a __BIN__ b __HOME__",
                &[("__BIN__", "__HOME__"), ("__HOME__", "h")]
            ),
            "a __HOME__ b h"
        );
        assert_eq!(fill("é__BIN__é", &[("__BIN__", "ü")]), "éüé");
    }

    #[test]
    fn userns_detection() {
        let host = |pairs: &'static [(&'static str, &'static str)]| {
            move |p: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == p)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(userns_blocker(host(&[])), None);
        assert_eq!(
            userns_blocker(host(&[("/proc/sys/user/max_user_namespaces", "63000\n")])),
            None
        );
        assert!(userns_blocker(host(&[(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n"
        )]))
        .unwrap()
        .contains("AppArmor"));
        assert!(userns_blocker(host(&[(
            "/proc/sys/kernel/unprivileged_userns_clone",
            "0\n"
        )]))
        .is_some());
        assert!(userns_blocker(host(&[("/proc/sys/user/max_user_namespaces", "0\n")])).is_some());
    }

    #[test]
    fn binary_checks() {
        let sd = Platform::Systemd;
        assert!(check_binary(Path::new("/usr/bin/x"), sd).is_ok());
        assert!(check_binary(Path::new("bin/x"), sd).is_err());
        assert!(check_binary(Path::new("/usr/bin/x\ny"), sd).is_err());
        assert!(check_binary(Path::new("/it's/x"), sd).is_err());
        assert!(check_binary(Path::new("/it's/x"), Platform::Launchd).is_ok());
        assert_eq!(
            build_tree(Path::new("/src/p/target/debug/x")),
            Some("target/debug")
        );
        assert_eq!(build_tree(Path::new("/home/u/.cargo/bin/x")), None);
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(shell_quote("/Users/a/x.plist"), "/Users/a/x.plist");
        assert_eq!(shell_quote("/Users/a b/x"), "'/Users/a b/x'");
        assert_eq!(shell_quote("/it's"), "'/it'\\''s'");
    }
}
