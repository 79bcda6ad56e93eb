//! Threads sharing one context: concurrent maps, unmaps, access pins and attaches
//! leave a consistent state and release everything.

use softiommu::iommufd::check::{check, check_pins};
use softiommu::iommufd::selftest::MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES;
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{Process, User, PAGE_SIZE};
use std::sync::Arc;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn api_types_are_thread_safe() {
    assert_send_sync::<Iommufd>();
    assert_send_sync::<softiommu::iommufd::AccessHandle>();
    assert_send_sync::<Arc<Process>>();
}

#[test]
fn threads_map_unmap_and_pin() {
    let mem = SimMemory::new(1 << 32).unwrap();
    let space = SimAddressSpace::new(&mem);
    let process = Process::new(space.clone(), User::new());
    let ctx = Iommufd::open(&process);
    let ioas = ctx.ioas_alloc().unwrap();
    let dev = ctx.test_mock_domain(ioas).unwrap();
    let buf = space.mmap_anon(None, 1024 * PAGE_SIZE, true).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let access = ctx
                    .test_create_access(ioas, MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES)
                    .unwrap();
                for i in 0..200u64 {
                    let va = buf + ((t * 256 + i % 256) * PAGE_SIZE);
                    let iova = ctx
                        .ioas_map(ioas, va, PAGE_SIZE, None, MapFlags::RW)
                        .unwrap();
                    if i % 3 == 0 {
                        access.pages(iova, PAGE_SIZE, va, 0).unwrap();
                    }
                    let mut b = [0u8; 8];
                    access.access().rw(iova, &mut b, false).unwrap();
                    // Unmapping asks the access to drop its pin first.
                    assert_eq!(ctx.ioas_unmap(ioas, iova, PAGE_SIZE).unwrap(), PAGE_SIZE);
                }
            })
        })
        .collect();
    // Meanwhile devices come and go on the same IOAS.
    for _ in 0..50 {
        let d = ctx.test_mock_domain(ioas).unwrap();
        ctx.destroy(d.stdev_id).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    check(&ctx).unwrap();
    check_pins(&ctx, mem.pins()).unwrap();
    assert_eq!(process.pinned_vm(), 0);
    ctx.destroy(dev.stdev_id).unwrap();
    drop(ctx);
    assert!(mem.pins().is_empty());
    assert_eq!(process.user.locked_vm(), 0);
}
