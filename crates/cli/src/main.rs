//! The `softiommu` command line.
//!
//! - `softiommu run [OPTIONS] -- PROGRAM [ARGS...]`: runs an unmodified program
//!   with the interposer (`libsoftiommu_preload.so`) in `LD_PRELOAD`, so that its
//!   `/dev/iommu` is softiommu. The program replaces this process (`exec`), so its
//!   exit status, signals and pid are its own.
//! - `softiommu headers DIR`: writes the C headers of the uAPI softiommu
//!   implements (`DIR/linux/iommufd.h`, `DIR/iommufd_test.h`) for `cc -I DIR`.
//! - `softiommu machine [FILE]`: the machine a TOML description (or the
//!   built-in default) makes: IOMMU units, IOMMU groups, drivers.
//!
//! Arguments are parsed by hand: the grammar is small and the binary stays free
//! of dependencies.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const HELP: &str = "\
softiommu: the Linux device-assignment stack (/dev/iommu, iommufd) in user space

Usage:
  softiommu run [OPTIONS] [--] PROGRAM [ARGS...]
  softiommu headers DIR
  softiommu machine [FILE] [--bind BDF=DRIVER]...
  softiommu --help | --version

Commands:
  run       Run PROGRAM with /dev/iommu answered by softiommu: the interposer
            libsoftiommu_preload.so is put first in LD_PRELOAD and PROGRAM
            replaces this process, so its exit status is PROGRAM's.
  headers   Write the uAPI headers softiommu implements, DIR/linux/{iommufd,vfio}.h
            and DIR/iommufd_test.h, for `cc -I DIR`.
  machine   Show the machine FILE describes (TOML; see
            examples/machines/default.toml), or the built-in default: its
            IOMMU units and the IOMMU groups Linux would form, with each
            function's driver and whether VFIO could use the group; with
            --bind BDF=DRIVER (repeatable), also the groups after those
            rebinds, or the first one's error.

Options of `run`:
  --trace              Log every call on an iommufd (and every open of
                       /dev/iommu) to stderr, decoded like strace.
  --trace-file FILE    The same, appended to FILE.
  --bind BDF=DRIVER    Move a function to another driver (`vfio-pci`,
                       `pci-stub`, a kernel driver's name, or `none`) before
                       PROGRAM starts, as writes to sysfs unbind/bind would,
                       with their errors (EBUSY: a DMA driver into a group
                       user space owns). Repeatable.
  --machine FILE       The machine behind /dev/vfio (TOML; see
                       examples/machines/default.toml). Default: the
                       built-in machine `softiommu machine` shows.
  --preload PATH       The interposer to load. Default: $SOFTIOMMU_PRELOAD, or
                       libsoftiommu_preload.so next to this executable (where
                       `cargo build` puts both).

Environment passed to PROGRAM:
  LD_PRELOAD           the interposer, then whatever LD_PRELOAD held
  SOFTIOMMU_TRACE      `stderr` or a file (set by --trace / --trace-file)
  SOFTIOMMU_MACHINE    the machine file, made absolute (set by --machine)
  SOFTIOMMU_BIND       BDF=DRIVER,... (set by --bind)

Example:
  cargo build --workspace
  target/debug/softiommu run --trace -- ./my-vmm --iommufd
";

const PRELOAD_NAME: &str = "libsoftiommu_preload.so";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(cmd) = args.first() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    match cmd.to_str() {
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("softiommu {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("run") => run(&args[1..]),
        Some("headers") => headers(&args[1..]),
        Some("machine") => machine(&args[1..]),
        _ => usage_error(&format!("unknown command `{}`", cmd.to_string_lossy())),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("softiommu: {msg}\nTry `softiommu --help`.");
    ExitCode::from(2)
}

/// What `run` was asked to do.
#[derive(Debug, Default, PartialEq)]
struct RunArgs {
    trace: Option<OsString>,
    machine: Option<PathBuf>,
    binds: Vec<String>,
    preload: Option<PathBuf>,
    program: Vec<OsString>,
}

/// Parses the arguments of `run`; `Err` is a usage error, `Ok(None)` is `--help`.
fn parse_run(args: &[OsString]) -> Result<Option<RunArgs>, String> {
    let mut out = RunArgs::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        let mut value = |name: &str| -> Result<OsString, String> {
            match s.split_once('=') {
                Some((_, v)) => Ok(v.into()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match s.split_once('=').map_or(&*s, |(k, _)| k) {
            "--" => {
                out.program = it.cloned().collect();
                break;
            }
            "-h" | "--help" => return Ok(None),
            "--trace" if !s.contains('=') => out.trace = Some("stderr".into()),
            "--trace-file" => out.trace = Some(value("--trace-file")?),
            "--preload" => out.preload = Some(value("--preload")?.into()),
            "--machine" => out.machine = Some(value("--machine")?.into()),
            "--bind" => out
                .binds
                .push(value("--bind")?.to_string_lossy().into_owned()),
            _ if s.starts_with('-') => return Err(format!("unknown option `{s}` of `run`")),
            _ => {
                out.program = std::iter::once(arg).chain(it).cloned().collect();
                break;
            }
        }
    }
    if out.program.is_empty() {
        return Err("`run` needs a PROGRAM to run".into());
    }
    Ok(Some(out))
}

/// The interposer: `--preload`, `$SOFTIOMMU_PRELOAD`, or next to this executable.
fn find_preload(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let (path, from) = match given {
        Some(p) => (p, "--preload"),
        None => match std::env::var_os("SOFTIOMMU_PRELOAD") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "SOFTIOMMU_PRELOAD"),
            _ => {
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot find this executable: {e}"))?;
                let dir = exe.parent().unwrap_or(Path::new("."));
                (dir.join(PRELOAD_NAME), "the directory of this executable")
            }
        },
    };
    let path = path.canonicalize().map_err(|e| {
        format!(
            "no interposer at {} ({from}): {e}\n\
             Build it with `cargo build -p softiommu-preload` (it lands next to \
             `softiommu` in the target directory), or give --preload PATH.",
            path.display()
        )
    })?;
    // ld.so splits LD_PRELOAD at colons and spaces.
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| *b == b':' || *b == b' ')
    {
        return Err(format!(
            "the interposer's path {} contains ':' or ' ', which LD_PRELOAD cannot hold",
            path.display()
        ));
    }
    Ok(path)
}

/// `LD_PRELOAD` with `lib` first.
fn ld_preload(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut v = lib.as_os_str().to_owned();
    if let Some(old) = existing.filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

fn run(args: &[OsString]) -> ExitCode {
    let run = match parse_run(args) {
        Ok(Some(r)) => r,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e),
    };
    let lib = match find_preload(run.preload) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("softiommu: {e}");
            return ExitCode::from(2);
        }
    };
    // The machine and the rebinds are checked here, so that a mistake is
    // reported before PROGRAM runs rather than at its first open of /dev/vfio.
    let binds = run.binds.join(",");
    let checked = run
        .machine
        .as_deref()
        .map_or_else(
            || Ok(softiommu::machine::Machine::default_machine()),
            load_machine,
        )
        .and_then(|m| rebound(m, &binds).map(|_| ()));
    if let Err(e) = checked {
        eprintln!("softiommu: {e}");
        return ExitCode::from(2);
    }
    let machine = run.machine.and_then(|m| std::path::absolute(m).ok());
    let mut cmd = Command::new(&run.program[0]);
    if let Some(m) = machine {
        cmd.env("SOFTIOMMU_MACHINE", m);
    }
    if !binds.is_empty() {
        cmd.env("SOFTIOMMU_BIND", &binds);
    }
    cmd.args(&run.program[1..]);
    cmd.env(
        "LD_PRELOAD",
        ld_preload(&lib, std::env::var_os("LD_PRELOAD").as_deref()),
    );
    if let Some(trace) = run.trace {
        // A file is made absolute, so that a program that changes directory
        // (or runs others that do) still writes to the same one.
        let trace = if trace == "stderr" {
            trace
        } else {
            std::path::absolute(&trace)
                .map(PathBuf::into_os_string)
                .unwrap_or(trace)
        };
        cmd.env("SOFTIOMMU_TRACE", trace);
    }
    let err = cmd.exec();
    eprintln!(
        "softiommu: cannot run {}: {err}",
        run.program[0].to_string_lossy()
    );
    // As shells do: 127 when there is no such program, 126 when it cannot run.
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

fn headers(args: &[OsString]) -> ExitCode {
    let [dir] = args else {
        return usage_error("`headers` needs exactly one argument, the directory");
    };
    let dir = Path::new(dir);
    match softiommu::uapi::cheader::write(dir) {
        Ok(()) => {
            println!(
                "wrote {}, {} and {}",
                dir.join("linux/iommufd.h").display(),
                dir.join("linux/vfio.h").display(),
                dir.join("iommufd_test.h").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("softiommu: cannot write headers to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// The machine a TOML file describes; `Err` says what is wrong with it.
fn load_machine(file: &Path) -> Result<softiommu::machine::Machine, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    softiommu::machine::Machine::from_toml(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// `machine` brought up on simulated memory with `binds` (`BDF=DRIVER,...`)
/// applied as sysfs writes would; `Err` names the first that fails and why.
fn rebound(
    machine: softiommu::machine::Machine,
    binds: &str,
) -> Result<std::sync::Arc<softiommu::machine::host::Host>, String> {
    let mem = softiommu::mem::sim::SimMemory::new(1 << 20).map_err(|e| e.to_string())?;
    let host = softiommu::machine::host::Host::new(machine, mem).map_err(|e| e.to_string())?;
    host.rebind_all(binds)?;
    Ok(host)
}

fn machine(args: &[OsString]) -> ExitCode {
    let mut file = None;
    let mut binds = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        match s.split_once('=').map_or(&*s, |(k, _)| k) {
            "--bind" => match s.split_once('=').map(|(_, v)| v.to_string()) {
                Some(v) => binds.push(v),
                None => match it.next() {
                    Some(v) => binds.push(v.to_string_lossy().into_owned()),
                    None => return usage_error("--bind needs BDF=DRIVER"),
                },
            },
            _ if file.is_none() && !s.starts_with('-') => file = Some(arg),
            _ => return usage_error("`machine` takes a TOML file and --bind BDF=DRIVER options"),
        }
    }
    let machine = match file {
        None => softiommu::machine::Machine::default_machine(),
        Some(file) => match load_machine(Path::new(file)) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("softiommu: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    print!("{machine}");
    if binds.is_empty() {
        return ExitCode::SUCCESS;
    }
    let host = match rebound(machine, &binds.join(",")) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("softiommu: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("After --bind:");
    for g in host.groups() {
        let viable = if host.viable(g.id) {
            "viable"
        } else {
            "not viable"
        };
        println!("  group {} ({viable}):", g.id);
        for bdf in &g.devices {
            if let Some(d) = host.device(*bdf) {
                println!("    {bdf} driver {}", d.driver);
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_run() {
        let r = parse_run(&os(&["--trace", "--", "prog", "--trace", "x"]))
            .unwrap()
            .unwrap();
        assert_eq!(r.trace, Some("stderr".into()));
        assert_eq!(r.program, os(&["prog", "--trace", "x"]));
        let r = parse_run(&os(&["--trace-file=t.log", "--preload", "/l.so", "prog"]))
            .unwrap()
            .unwrap();
        assert_eq!(r.trace, Some("t.log".into()));
        assert_eq!(r.preload, Some(PathBuf::from("/l.so")));
        assert_eq!(r.program, os(&["prog"]));
        assert_eq!(parse_run(&os(&["--help"])), Ok(None));
        assert!(parse_run(&os(&["--"])).is_err());
        assert!(parse_run(&os(&["--bogus", "prog"])).is_err());
        assert!(parse_run(&os(&["--trace-file"])).is_err());
    }

    #[test]
    fn prepends_to_ld_preload() {
        let lib = Path::new("/t/libsoftiommu_preload.so");
        assert_eq!(
            ld_preload(lib, None),
            OsString::from("/t/libsoftiommu_preload.so")
        );
        assert_eq!(
            ld_preload(lib, Some(OsStr::new("/x.so"))),
            OsString::from("/t/libsoftiommu_preload.so:/x.so")
        );
    }
}
