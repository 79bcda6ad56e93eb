//! Fault-injection sweep: every fallible step of a representative scenario fails
//! once at each of its injection points, and each failure must leave no trace.
//!
//! This is the kernel's `iommufd_fail_nth` idea. The scenario is a list of steps,
//! each one call into the core (IOAS alloc, map with and without domains,
//! map_file, copy, mock-domain attach incl. huge IOPTEs, replace, allowed and
//! reserved ranges, options, accesses that pin, read and write, unmap,
//! change_process, destroy). For each step and N = 1, 2, ...: snapshot everything
//! observable, arm the Nth injection point, run the step. If it fails, the error
//! must be the injected one, the Nth point must have fired, the state must equal
//! the snapshot and the consistency checks must pass; then N + 1. When the step
//! succeeds without reaching the Nth point, its sweep is over and the next step
//! starts from the state it left. A step that does fallible work (allocates,
//! pins, maps) must have at least one injection point. At the end everything is
//! released and the accounting is back to zero.

use softiommu::inject;
use softiommu::iommu::mock::{
    MockDomain, MockNestedDomain, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_IO_PAGE_SIZE,
};
use softiommu::iommufd::check::{check, check_pins};
use softiommu::iommufd::io_pagetable::ReservedOwner;
use softiommu::iommufd::selftest::{MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_ACCESS_WRITE};
use softiommu::iommufd::{AccessHandle, Iommufd, IovaRanges, MapFlags, Object};
use softiommu::mem::sim::{SimAddressSpace, SimFile, SimMemory};
use softiommu::mem::{AccountMode, AddressSpace, FileSource, Process, User, PAGE_SIZE};
use softiommu::range::IovaRange;
use softiommu::uapi::iommufd::{
    IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
    IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
};
use softiommu::uapi::test::{
    IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, MOCK_APERTURE_START,
};
use softiommu::Error;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

const PS: u64 = PAGE_SIZE;
const MIB: u64 = 1 << 20;

/// Everything the scenario works with; steps record what they create here, and
/// only when they succeed.
struct World {
    space: Arc<SimAddressSpace>,
    file: Arc<SimFile>,
    procs: [Arc<Process>; 2],
    users: [Arc<User>; 2],
    ctx: Iommufd,
    big: u64,
    buf: u64,
    scratch: u64,
    ids: HashMap<&'static str, u32>,
    iovas: HashMap<&'static str, u64>,
    accesses: HashMap<&'static str, AccessHandle>,
}

impl World {
    fn new() -> World {
        let mem = SimMemory::new(64 * MIB).unwrap();
        let space = SimAddressSpace::new(&mem);
        // First, so physically 1 MiB aligned: the huge domain uses huge IOPTEs.
        let big = space.mmap_anon(None, 2 * MIB, true).unwrap();
        let buf = space.mmap_anon(None, 32 * PS, true).unwrap();
        let scratch = space.mmap_anon(None, 4 * PS, true).unwrap();
        let file = SimFile::new(&mem, 32 * PS, 32 * PS).unwrap();
        let users = [User::new(), User::new()];
        let procs = [
            Process::new(space.clone(), users[0].clone()),
            Process::new(space.clone(), users[1].clone()),
        ];
        procs[0].set_cap_sys_resource(true);
        let ctx = Iommufd::open(&procs[0]);
        World {
            space,
            file,
            procs,
            users,
            ctx,
            big,
            buf,
            scratch,
            ids: HashMap::new(),
            iovas: HashMap::new(),
            accesses: HashMap::new(),
        }
    }

    fn id(&self, name: &str) -> u32 {
        self.ids[name]
    }

    fn iova(&self, name: &str) -> u64 {
        self.iovas[name]
    }

    fn file(&self) -> Arc<dyn FileSource> {
        self.file.clone()
    }
}

/// One area as seen from outside.
#[derive(Debug, PartialEq)]
struct AreaState {
    range: IovaRange,
    start_byte: u64,
    prot: u32,
    num_accesses: u32,
    prevent_access: bool,
}

/// One IOAS as seen from outside.
#[derive(Debug, PartialEq)]
struct IoasState {
    id: u32,
    areas: Vec<AreaState>,
    reserved: Vec<(IovaRange, ReservedOwner)>,
    allowed: Vec<IovaRange>,
    ranges: IovaRanges,
    large_pages_disabled: bool,
    domains: usize,
}

/// One `Pages` as seen from outside.
#[derive(Debug, PartialEq)]
struct PagesState {
    holders: Vec<(IovaRange, u32)>,
    npinned: u64,
    mode: AccountMode,
    process: usize,
}

/// One mock-domain extent: IOVA range, phys, prot, page size.
type ExtentState = (IovaRange, u64, u32, u64);

/// Everything observable about the context and the memory.
#[derive(Debug, PartialEq)]
struct Snapshot {
    objects: Vec<(u32, &'static str, u32)>,
    ioases: Vec<IoasState>,
    /// Per HWPT: its mock domain's extents (IOVA range, phys, prot, page size).
    domains: Vec<(u32, Vec<ExtentState>)>,
    /// Per nested HWPT: its parent and its mock IOTLB.
    nested: Vec<(u32, u32, Vec<u32>)>,
    /// Per device: the HWPT it is attached to.
    devices: Vec<(u32, Option<u32>)>,
    /// Per access: its IOAS and pinned ranges.
    accesses: Vec<(u32, Option<u32>, Vec<IovaRange>)>,
    pages: BTreeMap<usize, PagesState>,
    pins: Vec<(IovaRange, u32)>,
    /// (pinned_vm, locked_vm, user locked_vm) of each process.
    accounting: Vec<(u64, u64, u64)>,
    rlimit_mode: u64,
    process: usize,
}

fn snapshot(w: &World) -> Snapshot {
    let ctx = &w.ctx;
    let mut s = Snapshot {
        objects: Vec::new(),
        ioases: Vec::new(),
        domains: Vec::new(),
        nested: Vec::new(),
        devices: Vec::new(),
        accesses: Vec::new(),
        pages: BTreeMap::new(),
        pins: w.space.memory().pins().snapshot(),
        accounting: (0..2)
            .map(|i| {
                (
                    w.procs[i].pinned_vm(),
                    w.procs[i].locked_vm(),
                    w.users[i].locked_vm(),
                )
            })
            .collect(),
        rlimit_mode: ctx
            .option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0)
            .unwrap(),
        process: Arc::as_ptr(&ctx.process()) as usize,
    };
    for (id, obj, users) in ctx.objects() {
        s.objects.push((id, obj.type_name(), users));
        match obj {
            Object::Ioas(ioas) => {
                let iopt = ioas.iopt();
                let mut areas = Vec::new();
                for (r, a) in iopt.areas() {
                    areas.push(AreaState {
                        range: r,
                        start_byte: a.start_byte,
                        prot: a.prot,
                        num_accesses: a.num_accesses,
                        prevent_access: a.prevent_access,
                    });
                    s.pages.insert(
                        Arc::as_ptr(&a.pages) as usize,
                        PagesState {
                            holders: a.pages.holder_runs(),
                            npinned: a.pages.npinned(),
                            mode: a.pages.account_mode(),
                            process: Arc::as_ptr(&a.pages.process()) as usize,
                        },
                    );
                }
                s.ioases.push(IoasState {
                    id,
                    areas,
                    reserved: iopt.reserved().map(|(r, o)| (r, *o)).collect(),
                    allowed: iopt.allowed(),
                    ranges: IovaRanges {
                        ranges: iopt.iova_ranges(),
                        alignment: iopt.iova_alignment(),
                    },
                    large_pages_disabled: iopt.large_pages_disabled(),
                    domains: iopt.domains().len(),
                });
            }
            Object::HwptPaging(h) => {
                let mock = h
                    .domain
                    .as_any()
                    .downcast_ref::<MockDomain>()
                    .expect("mock domain");
                let ext = mock
                    .extents()
                    .into_iter()
                    .map(|(r, e)| (r, e.phys, e.prot, e.pgsize))
                    .collect();
                s.domains.push((id, ext));
            }
            Object::HwptNested(h) => {
                let mock = h
                    .domain
                    .as_any()
                    .downcast_ref::<MockNestedDomain>()
                    .expect("mock nested domain");
                let iotlb = (0..4).filter_map(|i| mock.iotlb(i)).collect();
                s.nested.push((id, h.parent.id, iotlb));
            }
            Object::Device(d) => s.devices.push((id, d.hwpt().map(|h| h.id()))),
            Object::Access(a) => s.accesses.push((id, a.ioas().map(|i| i.id), a.pinned())),
            Object::Selftest(_) | Object::Fault(_) | Object::Viommu(_) | Object::Vdevice(_) => {}
        }
    }
    s
}

/// The ID the next object would get (allocating and destroying a probe IOAS
/// leaves the table as it was).
fn next_id(ctx: &Iommufd) -> u32 {
    let id = ctx.ioas_alloc().expect("probe IOAS");
    ctx.destroy(id).expect("destroy probe IOAS");
    id
}

type StepFn = Box<dyn Fn(&mut World) -> Result<(), Error>>;

struct Step {
    name: &'static str,
    /// Whether the step does work that can fail (allocates, pins, maps): its
    /// sweep must find at least one injection point.
    fallible: bool,
    run: StepFn,
}

fn step(
    name: &'static str,
    fallible: bool,
    run: impl Fn(&mut World) -> Result<(), Error> + 'static,
) -> Step {
    Step {
        name,
        fallible,
        run: Box::new(run),
    }
}

fn scenario() -> Vec<Step> {
    vec![
        // Before any object exists: charge pins to the process, not the user.
        step("option RLIMIT_MODE=1", false, |w| {
            w.ctx
                .option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1)
                .map(|_| ())
        }),
        step("ioas alloc A", true, |w| {
            let id = w.ctx.ioas_alloc()?;
            w.ids.insert("A", id);
            Ok(())
        }),
        step("ioas alloc B", true, |w| {
            let id = w.ctx.ioas_alloc()?;
            w.ids.insert("B", id);
            Ok(())
        }),
        step("map A, no domain", true, |w| {
            let iova = MOCK_APERTURE_START;
            w.ctx
                .ioas_map(w.id("A"), w.buf, 16 * PS, Some(iova), MapFlags::RW)?;
            w.iovas.insert("A user1", iova);
            Ok(())
        }),
        step("map_file A, no domain, fixed IOVA", true, |w| {
            let iova = MOCK_APERTURE_START + 4 * MIB;
            w.ctx
                .ioas_map_file(w.id("A"), w.file(), 2048, 8 * PS, Some(iova), MapFlags::RW)?;
            w.iovas.insert("A file1", iova);
            Ok(())
        }),
        step("attach mock domain to A", true, |w| {
            let ids = w.ctx.test_mock_domain(w.id("A"))?;
            w.ids.insert("stdev A", ids.stdev_id);
            w.ids.insert("hwpt A", ids.hwpt_id);
            Ok(())
        }),
        step("map A with domain, fixed IOVA", true, |w| {
            let iova = MOCK_APERTURE_START + 8 * MIB;
            w.ctx.ioas_map(
                w.id("A"),
                w.buf + 16 * PS + 2048,
                8 * PS,
                Some(iova),
                MapFlags::RW,
            )?;
            w.iovas.insert("A user2", iova);
            Ok(())
        }),
        step("map_file A with domain, auto IOVA", true, |w| {
            let iova =
                w.ctx
                    .ioas_map_file(w.id("A"), w.file(), 16 * PS, 8 * PS, None, MapFlags::RO)?;
            w.iovas.insert("A file2", iova);
            Ok(())
        }),
        step("attach huge mock domain to B", true, |w| {
            let ids = w
                .ctx
                .test_mock_domain_flags(w.id("B"), MOCK_FLAGS_DEVICE_HUGE_IOVA)?;
            w.ids.insert("stdev B", ids.stdev_id);
            w.ids.insert("hwpt B", ids.hwpt_id);
            Ok(())
        }),
        step("map B 2 MiB with huge IOPTEs", true, |w| {
            let iova = w
                .ctx
                .ioas_map(w.id("B"), w.big, 2 * MIB, None, MapFlags::RW)?;
            w.iovas.insert("B big", iova);
            Ok(())
        }),
        step("copy A -> B", true, |w| {
            let iova = w.ctx.ioas_copy(
                w.id("B"),
                w.id("A"),
                w.iova("A user1"),
                16 * PS,
                None,
                MapFlags::RW,
            )?;
            w.iovas.insert("B copy", iova);
            Ok(())
        }),
        step("attach second device to A", true, |w| {
            let ids = w.ctx.test_mock_domain(w.id("A"))?;
            w.ids.insert("stdev A2", ids.stdev_id);
            Ok(())
        }),
        step("ioas alloc C", true, |w| {
            let id = w.ctx.ioas_alloc()?;
            w.ids.insert("C", id);
            Ok(())
        }),
        step("allow_iovas C", true, |w| {
            let ranges = [
                IovaRange::new(64 * MIB, 128 * MIB - 1),
                IovaRange::new(256 * MIB, 320 * MIB - 1),
            ];
            w.ctx.ioas_allow_iovas(w.id("C"), &ranges)
        }),
        step("add_reserved C", true, |w| {
            w.ctx.test_add_reserved(w.id("C"), 192 * MIB, 4 * MIB)
        }),
        step("map C, no domain, auto IOVA in allowed", true, |w| {
            let iova = w
                .ctx
                .ioas_map(w.id("C"), w.buf, 8 * PS, None, MapFlags::RW)?;
            w.iovas.insert("C user", iova);
            Ok(())
        }),
        step("replace A2 -> C (new domain)", true, |w| {
            let hwpt = w
                .ctx
                .test_mock_domain_replace(w.id("stdev A2"), w.id("C"))?;
            w.ids.insert("hwpt C", hwpt);
            Ok(())
        }),
        step("replace A2 -> hwpt A (existing)", false, |w| {
            w.ctx
                .test_mock_domain_replace(w.id("stdev A2"), w.id("hwpt A"))
                .map(|_| ())
        }),
        step("hwpt alloc nesting parent on A", true, |w| {
            let dev = w.ctx.get_mock_dev(w.id("stdev A2"))?.idev.id;
            let id = w
                .ctx
                .hwpt_alloc(dev, w.id("A"), IOMMU_HWPT_ALLOC_NEST_PARENT, 0, 0, 0)?;
            w.ids.insert("parent A", id);
            Ok(())
        }),
        step("nested hwpt alloc on the parent", true, |w| {
            let dev = w.ctx.get_mock_dev(w.id("stdev A2"))?.idev.id;
            let data = w.scratch + 3 * PS;
            w.space.write(data, &0xbadbeefu32.to_ne_bytes()).unwrap();
            let id =
                w.ctx
                    .hwpt_alloc(dev, w.id("parent A"), 0, IOMMU_HWPT_DATA_SELFTEST, 4, data)?;
            w.ids.insert("nested A", id);
            Ok(())
        }),
        step("replace A2 -> nested A", false, |w| {
            w.ctx
                .test_mock_domain_replace(w.id("stdev A2"), w.id("nested A"))
                .map(|_| ())
        }),
        step("invalidate nested A", false, |w| {
            let entry = w.scratch + 3 * PS;
            w.space.write(entry, &[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
            let (r, done) = w.ctx.hwpt_invalidate(
                w.id("nested A"),
                IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
                entry,
                8,
                1,
            );
            assert!(r.is_err() || done == 1);
            r
        }),
        step("replace A2 -> hwpt A again", false, |w| {
            w.ctx
                .test_mock_domain_replace(w.id("stdev A2"), w.id("hwpt A"))
                .map(|_| ())
        }),
        step("destroy nested A", false, |w| {
            w.ctx.destroy(w.id("nested A"))
        }),
        step("destroy parent A", false, |w| {
            w.ctx.destroy(w.id("parent A"))
        }),
        step("option HUGE_PAGES=0 on C", false, |w| {
            w.ctx
                .option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, w.id("C"), 0)
                .map(|_| ())
        }),
        step("access create on B", true, |w| {
            let h = w
                .ctx
                .test_create_access(w.id("B"), MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
            w.accesses.insert("B", h);
            Ok(())
        }),
        step("access pin on B (domain already pins)", true, |w| {
            w.accesses["B"]
                .pages(w.iova("B copy") + PS, 2 * PS, w.buf + PS, MOCK_ACCESS_WRITE)
                .map(|_| ())
        }),
        step("access create on C", true, |w| {
            let h = w
                .ctx
                .test_create_access(w.id("C"), MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
            w.accesses.insert("C", h);
            Ok(())
        }),
        step("access pin on C (no domain)", true, |w| {
            w.accesses["C"]
                .pages(w.iova("C user"), 3 * PS, w.buf, 0)
                .map(|_| ())
        }),
        step("access write on B", true, |w| {
            w.space.write(w.scratch, b"fault injection").unwrap();
            w.accesses["B"].rw(w.iova("B big") + 100, w.scratch, 15, MOCK_ACCESS_WRITE)
        }),
        step("access read on C", true, |w| {
            w.accesses["C"].rw(w.iova("C user") + 10, w.scratch + PS, 5000, 0)
        }),
        step("access replace C -> B", true, |w| {
            w.accesses["C"].replace_ioas(w.id("B"))
        }),
        step("unmap B copy (access pinned)", false, |w| {
            w.ctx
                .ioas_unmap(w.id("B"), w.iova("B copy"), 16 * PS)
                .map(|_| ())
        }),
        step("unmap A user1", false, |w| {
            w.ctx
                .ioas_unmap(w.id("A"), w.iova("A user1"), 16 * PS)
                .map(|_| ())
        }),
        step("unmap A user2", false, |w| {
            w.ctx
                .ioas_unmap(w.id("A"), w.iova("A user2"), 8 * PS)
                .map(|_| ())
        }),
        step("unmap all B", false, |w| {
            w.ctx.ioas_unmap(w.id("B"), 0, u64::MAX).map(|_| ())
        }),
        step("unmap all C", false, |w| {
            w.ctx.ioas_unmap(w.id("C"), 0, u64::MAX).map(|_| ())
        }),
        step("map_file B with domain", true, |w| {
            w.ctx
                .ioas_map_file(w.id("B"), w.file(), 0, 4 * PS, None, MapFlags::RW)
                .map(|_| ())
        }),
        step("change_process to the second process", true, |w| {
            w.ctx.set_process(&w.procs[1]);
            let r = w.ctx.ioas_change_process();
            if r.is_err() {
                w.ctx.set_process(&w.procs[0]);
            }
            r
        }),
        step("detach A2", false, |w| w.ctx.destroy(w.id("stdev A2"))),
        step("destroy C", false, |w| w.ctx.destroy(w.id("C"))),
    ]
}

#[test]
fn every_injection_point_fails_cleanly() {
    let mut w = World::new();
    let mut report = Vec::new();
    for s in scenario() {
        let mut points = 0;
        for nth in 1.. {
            assert!(nth < 1000, "{}: no end to its injection points", s.name);
            let before = snapshot(&w);
            let before_next = next_id(&w.ctx);
            inject::arm(nth);
            let result = (s.run)(&mut w);
            let passed = inject::disarm();
            match result {
                Err(e) => {
                    assert_eq!(
                        passed, nth,
                        "{}: failed with {e} but injection {nth} did not fire",
                        s.name
                    );
                    assert!(
                        matches!(e, Error::Injected { .. }),
                        "{}: injection {nth} gave {e:?}",
                        s.name
                    );
                    let after = snapshot(&w);
                    assert!(after == before, "{}: injection {nth} ({e}) changed the state:\nbefore {before:#?}\nafter {after:#?}", s.name);
                    assert_eq!(
                        next_id(&w.ctx),
                        before_next,
                        "{}: injection {nth} changed the next ID",
                        s.name
                    );
                    check(&w.ctx).unwrap_or_else(|c| panic!("{}: injection {nth}: {c}", s.name));
                    check_pins(&w.ctx, w.space.memory().pins())
                        .unwrap_or_else(|c| panic!("{}: injection {nth}: {c}", s.name));
                    points = nth;
                }
                Ok(()) => {
                    assert!(
                        passed < nth,
                        "{}: injection {nth} fired but the step succeeded",
                        s.name
                    );
                    assert_eq!(
                        passed, points,
                        "{}: {passed} points on success, {points} failures",
                        s.name
                    );
                    check(&w.ctx).unwrap_or_else(|c| panic!("{}: after success: {c}", s.name));
                    check_pins(&w.ctx, w.space.memory().pins())
                        .unwrap_or_else(|c| panic!("{}: {c}", s.name));
                    break;
                }
            }
        }
        report.push((s.name, points, s.fallible));
    }
    for (name, points, _) in &report {
        println!("{points:3} injection points: {name}");
    }
    for (name, points, fallible) in &report {
        assert!(
            !fallible || *points > 0,
            "`{name}` does fallible work but has no injection point"
        );
    }
    // The scenario reached what it was built to reach.
    let hwpt_b = w.ctx.get_hwpt_paging(w.id("hwpt B")).unwrap();
    assert!(
        hwpt_b.domain.pgsize_bitmap() & !MOCK_IO_PAGE_SIZE != 0,
        "B's domain has no huge page size"
    );
    assert_eq!(
        w.procs[0].pinned_vm(),
        0,
        "change_process left pins on the first process"
    );
    assert!(w.procs[1].pinned_vm() > 0 && w.procs[1].locked_vm() == w.procs[1].pinned_vm());
    let seen_pages: HashSet<usize> = snapshot(&w).pages.keys().copied().collect();
    assert!(!seen_pages.is_empty());
    // Release everything: accesses first, then the context.
    let World {
        ctx,
        accesses,
        procs,
        users,
        space,
        ..
    } = w;
    drop(accesses);
    drop(ctx);
    for (p, u) in procs.iter().zip(&users) {
        assert_eq!((p.pinned_vm(), p.locked_vm(), u.locked_vm()), (0, 0, 0));
    }
    assert!(
        space.memory().pins().is_empty(),
        "pins left: {:?}",
        space.memory().pins().snapshot()
    );
}

/// The huge domain really used huge IOPTEs for the 2 MiB map, and an injected
/// failure half-way through a huge map leaves the domain empty.
#[test]
fn huge_map_failure_unwinds() {
    let w = World::new();
    let ioas = w.ctx.ioas_alloc().unwrap();
    let ids = w
        .ctx
        .test_mock_domain_flags(ioas, MOCK_FLAGS_DEVICE_HUGE_IOVA)
        .unwrap();
    let hwpt = w.ctx.get_hwpt_paging(ids.hwpt_id).unwrap();
    let mock = hwpt.domain.as_any().downcast_ref::<MockDomain>().unwrap();
    let mut nth = 1;
    let iova = loop {
        inject::arm(nth);
        let r = w.ctx.ioas_map(ioas, w.big, 2 * MIB, None, MapFlags::RW);
        inject::disarm();
        match r {
            Ok(iova) => break iova,
            Err(_) => {
                assert!(mock.is_empty(), "injection {nth} left mappings");
                assert_eq!(w.procs[0].pinned_vm(), 0);
                nth += 1;
            }
        }
    };
    assert!(nth > 1);
    assert!(mock
        .extents()
        .iter()
        .any(|(_, e)| e.pgsize > MOCK_IO_PAGE_SIZE));
    assert_eq!(w.ctx.ioas_unmap(ioas, iova, 2 * MIB).unwrap(), 2 * MIB);
    assert!(mock.is_empty());
}
