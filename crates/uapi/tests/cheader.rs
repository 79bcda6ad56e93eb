//! Compiles the generated C headers with the system C compiler and checks them.
//!
//! - `c_layout_matches_the_rust_tables` writes the headers, generates from the same
//!   tables a C program that prints `sizeof`/`_Alignof` of every struct, `offsetof`
//!   and `sizeof` of every field (down into the anonymous unions) and the value of
//!   every enumerator, `#define` and ioctl number, runs it, and compares each line
//!   with what the tables (that is, `size_of`, `offset_of!` and the Rust constants)
//!   say.
//! - `selftest_spellings_compile` compiles and runs a hand-written program that uses
//!   the headers the way the kernel's selftests do: designated initializers through
//!   the anonymous unions, ioctl numbers as integer constant expressions, and the
//!   selftests' own later `#define MOCK_PAGE_SIZE`.
//!
//! They need `cc` and the kernel's uAPI headers (`linux/types.h`, `linux/ioctl.h`;
//! the `linux-libc-dev` package on Debian and Ubuntu). The tests install nothing;
//! without them they fail and say what is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use softiommu_uapi::cheader::{self, CField, CType, Item, IOMMUFD_H, IOMMUFD_TEST_H};

const CFLAGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-std=gnu11"];

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("softiommu-cheader-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `source` against the headers in `include`, runs it and returns its stdout.
fn compile_and_run(dir: &Path, include: &Path, name: &str, source: &str) -> String {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let out = Command::new("cc")
        .args(CFLAGS)
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("running `cc`: these tests need a C compiler on PATH");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = if stderr.contains("linux/types.h") || stderr.contains("linux/ioctl.h") {
        "\n(the kernel uAPI headers are missing: install linux-libc-dev or equivalent)"
    } else {
        ""
    };
    assert!(
        out.status.success(),
        "cc failed on {name}.c:\n{stderr}{hint}"
    );
    let run = Command::new(&bin).output().unwrap();
    assert!(
        run.status.success(),
        "{name} exited with {}:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout)
    );
    String::from_utf8(run.stdout).unwrap()
}

/// One probe: the C expression to print and the value the tables expect.
struct Probe {
    label: String,
    c_expr: String,
    expected: u64,
}

fn probe(probes: &mut Vec<Probe>, label: String, c_expr: String, expected: usize) {
    probes.push(Probe {
        label,
        c_expr,
        expected: expected as u64,
    });
}

/// Probes for the fields of `struct s`, reached from the struct through `prefix`
/// (empty, or a union member's name and a dot) at `base` bytes from its start.
fn field_probes(probes: &mut Vec<Probe>, s: &str, prefix: &str, base: usize, fields: &[CField]) {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let mut both = |path: &str, offset: usize, size: usize| {
            probe(
                probes,
                format!("offsetof({s}, {path})"),
                format!("offsetof(struct {s}, {path})"),
                offset,
            );
            probe(
                probes,
                format!("sizeof({s}.{path})"),
                format!("sizeof(((struct {s} *)0)->{path})"),
                size,
            );
        };
        match f.ty {
            CType::Scalar(_) | CType::Array(..) => both(&path, base + f.offset, f.size),
            CType::Struct(inner) => {
                both(&path, base + f.offset, f.size);
                field_probes(
                    probes,
                    s,
                    &format!("{path}."),
                    base + f.offset,
                    inner.fields,
                );
            }
            // An anonymous union has no name of its own: its members are reached
            // directly, at the union's offset.
            CType::Union(members) => field_probes(probes, s, prefix, base + f.offset, members),
            CType::Padding => {}
        }
    }
}

fn all_probes() -> Vec<Probe> {
    let mut probes = Vec::new();
    for item in IOMMUFD_H.items.iter().chain(IOMMUFD_TEST_H.items) {
        match item {
            Item::Comment(_) => {}
            Item::Define(c) => probe(&mut probes, c.name.into(), c.name.into(), c.value as usize),
            Item::Ioctl(i) => probe(&mut probes, i.name.into(), i.name.into(), i.value as usize),
            Item::Enum { values, .. } => {
                for c in *values {
                    probe(&mut probes, c.name.into(), c.name.into(), c.value as usize);
                }
            }
            Item::Struct(s) => {
                probe(
                    &mut probes,
                    format!("sizeof({})", s.name),
                    format!("sizeof(struct {})", s.name),
                    s.size,
                );
                probe(
                    &mut probes,
                    format!("_Alignof({})", s.name),
                    format!("_Alignof(struct {})", s.name),
                    s.align,
                );
                field_probes(&mut probes, s.name, "", 0, s.fields);
            }
        }
    }
    probes
}

#[test]
fn c_layout_matches_the_rust_tables() {
    let scratch = Scratch::new("layout");
    let include = scratch.0.join("include");
    cheader::write(&include).unwrap();

    let probes = all_probes();
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <iommufd_test.h>\n\n\
         int main(void)\n{\n",
    );
    for p in &probes {
        writeln!(
            program,
            "\tprintf(\"%s %llu\\n\", \"{}\", (unsigned long long)({}));",
            p.label, p.c_expr
        )
        .unwrap();
    }
    program.push_str("\treturn 0;\n}\n");

    let output = compile_and_run(&scratch.0, &include, "layout", &program);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), probes.len(), "one output line per probe");
    let mut wrong = Vec::new();
    for (p, line) in probes.iter().zip(&lines) {
        let expected = format!("{} {}", p.label, p.expected);
        if *line != expected {
            wrong.push(format!("C says `{line}`, Rust says `{expected}`"));
        }
    }
    assert!(
        wrong.is_empty(),
        "C and Rust disagree:\n{}",
        wrong.join("\n")
    );

    // The probes reach every corner of both headers.
    assert!(probes.len() > 600, "only {} probes", probes.len());
    for label in [
        "offsetof(iommu_test_cmd, dirty.out_nr_dirty) 56",
        "offsetof(iommu_test_cmd, check_map.uptr) 32",
        "offsetof(iommu_test_cmd, last) 64",
        "offsetof(iommu_hw_info, in_data_type) 24",
        "offsetof(iommu_hw_info, out_data_type) 24",
        "sizeof(iommu_vevent_arm_smmuv3.evt) 32",
        "IOMMU_IOAS_MAP 15237",
        "IOMMU_TEST_CMD 15264",
    ] {
        assert!(lines.contains(&label), "no line `{label}`");
    }
}

/// Written the way `tools/testing/selftests/iommu` uses the headers.
const SELFTEST_SPELLINGS: &str = r#"
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <linux/iommufd.h>
#include <iommufd_test.h>
#include <iommufd_test.h> /* the include guards allow a second inclusion */

/* The selftests of 6.12 to 6.18 define these after including the header. */
#define MOCK_PAGE_SIZE (4096 / 2)
#define MOCK_HUGE_PAGE_SIZE (512 * MOCK_PAGE_SIZE)

#define sizeof_field(TYPE, MEMBER) sizeof((((TYPE *)0)->MEMBER))
#define offsetofend(TYPE, MEMBER) (offsetof(TYPE, MEMBER) + sizeof_field(TYPE, MEMBER))

_Static_assert(IOMMU_IOAS_MAP == 0x3b85, "ioctl number");
_Static_assert(IOMMU_TEST_CMD == 0x3ba0, "test ioctl number");
_Static_assert(IOMMU_HW_QUEUE_ALLOC == 0x3b94, "newest ioctl number");
_Static_assert(sizeof(struct iommu_test_cmd) == 72, "test command size");
_Static_assert(offsetof(struct iommu_test_cmd, dirty.out_nr_dirty) == 56, "union member");
_Static_assert(offsetofend(struct iommu_hw_info, out_capabilities) == 40, "hw_info end");
_Static_assert(offsetof(struct iommu_hw_info, in_data_type) ==
	       offsetof(struct iommu_hw_info, out_data_type), "one union");

static int kind(unsigned long request)
{
	switch (request) { /* ioctl numbers are integer constant expressions */
	case IOMMU_DESTROY:
		return 1;
	case IOMMU_TEST_CMD:
		return 2;
	default:
		return 0;
	}
}

int main(void)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = 1,
		.mock_domain = { .out_stdev_id = 0 },
	};
	struct iommu_test_cmd refs = {
		.size = sizeof(refs),
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = { .length = 4096, .uptr = (uintptr_t)&cmd, .refs = 1 },
	};
	struct iommu_test_cmd dirty = {
		.size = sizeof(dirty),
		.op = IOMMU_TEST_OP_DIRTY,
		.id = 2,
		.dirty = { .iova = MOCK_APERTURE_START, .length = MOCK_PAGE_SIZE,
			   .page_size = MOCK_HUGE_PAGE_SIZE, .uptr = 0 },
	};
	struct iommu_test_cmd flags = {
		.size = sizeof(flags),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
		.mock_domain_flags = { .dev_flags = MOCK_FLAGS_DEVICE_NO_DIRTY |
						   MOCK_FLAGS_DEVICE_HUGE_IOVA |
						   MOCK_FLAGS_DEVICE_PASID },
	};
	struct iommu_hw_info info = { .size = sizeof(info), .dev_id = 1 };
	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
	};
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_hwpt_invalidate_selftest inv[2] = {
		{ .flags = IOMMU_TEST_INVALIDATE_FLAG_ALL,
		  .iotlb_id = MOCK_NESTED_DOMAIN_IOTLB_ID_MAX },
	};
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
			 IOMMU_IOAS_MAP_READABLE,
		.iova = MOCK_APERTURE_START,
	};
	struct iommu_hwpt_arm_smmuv3 ste = { .ste = { 1, 2 } };
	enum iommu_hwpt_data_type type = IOMMU_HWPT_DATA_SELFTEST;
	unsigned char bytes[sizeof(cmd)];

	cmd.check_map.uptr = 0;
	cmd.mock_domain.out_stdev_id = 7;
	if (cmd.mock_domain_flags.out_stdev_id != 7 || cmd.pasid_check.pasid != 7)
		return 1; /* the members share the union */
	info.in_data_type = IOMMU_HW_INFO_TYPE_SELFTEST;
	if (info.out_data_type != IOMMU_HW_INFO_TYPE_SELFTEST)
		return 2;
	dirty.dirty.out_nr_dirty = 9;
	memcpy(bytes, &dirty, sizeof(bytes));
	if (bytes[56] != 9 && bytes[63] != 9)
		return 3; /* out_nr_dirty is the word at byte 56 */
	cmd.last = refs.check_refs.refs + flags.mock_domain_flags.dev_flags +
		   viommu.type + data.iotlb + inv[0].flags + map.flags +
		   (unsigned)ste.ste[1] + type;
	if (kind(IOMMU_DESTROY) != 1 || kind(IOMMU_TEST_CMD) != 2)
		return 4;
	return 0;
}
"#;

#[test]
fn selftest_spellings_compile() {
    let scratch = Scratch::new("spellings");
    let include = scratch.0.join("include");
    cheader::write(&include).unwrap();
    compile_and_run(&scratch.0, &include, "spellings", SELFTEST_SPELLINGS);
}

#[test]
fn write_puts_the_headers_where_cc_looks() {
    let scratch = Scratch::new("write");
    cheader::write(&scratch.0).unwrap();
    let read = |p: &str| std::fs::read_to_string(scratch.0.join(p)).unwrap();
    assert_eq!(read("linux/iommufd.h"), cheader::iommufd_h());
    assert_eq!(read("iommufd_test.h"), cheader::iommufd_test_h());
    assert!(read("linux/iommufd.h").starts_with("/* SPDX-License-Identifier: MIT */\n"));
    assert!(read("iommufd_test.h").contains("#ifndef _UAPI_IOMMUFD_TEST_H\n"));
}
