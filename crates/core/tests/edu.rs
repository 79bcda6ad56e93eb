//! The `edu` DMA device behind a VT-d unit, attached through iommufd: copies
//! land where mapped, a transfer touching an unmapped IOVA fails (and a failed
//! read writes nothing), nothing reaches unmapped pages, devices in different
//! IOASes cannot reach each other's memory, PASIDs select their own domain,
//! and the bus-master bit gates DMA.

mod common;

use common::Fixture;
use softiommu::devices::cfg;
use softiommu::devices::edu::*;
use softiommu::devices::PciDevice;
use softiommu::iommu::dma::{DmaFault, NO_PASID};
use softiommu::iommu::vtd::{VtdCaps, VtdDriver};
use softiommu::iommu::Device;
use softiommu::iommufd::IommufdDevice;
use softiommu::mem::PAGE_SIZE;
use softiommu::uapi::iommufd::IOMMU_HWPT_ALLOC_PASID;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// An edu device (16-bit PASIDs) behind a VT-d unit, bound to the context
/// and attached to `ioas`, with bus mastering on.
fn edu(f: &Fixture, ioas: u32) -> (Arc<Edu>, Arc<IommufdDevice>) {
    let driver = VtdDriver::new(VtdCaps::default(), f.mem.clone());
    let dev = Arc::new(Device::new("0000:00:03.0", driver, 16));
    let idev = f.ctx().device_bind(dev.clone()).unwrap();
    f.ctx().device_attach(&idev, NO_PASID, ioas).unwrap();
    let edu = Edu::new(dev, f.mem.clone());
    let cmd = (cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER).to_le_bytes();
    edu.config_write(cfg::COMMAND as u32, &cmd);
    (edu, idev)
}

fn w32(d: &Edu, at: u64, v: u32) {
    d.bar_write(0, at, &v.to_le_bytes());
}

fn w64(d: &Edu, at: u64, v: u64) {
    d.bar_write(0, at, &v.to_le_bytes());
}

fn r32(d: &Edu, at: u64) -> u32 {
    let mut b = [0u8; 4];
    d.bar_read(0, at, &mut b);
    u32::from_le_bytes(b)
}

fn r64(d: &Edu, at: u64) -> u64 {
    let mut b = [0u8; 8];
    d.bar_read(0, at, &mut b);
    u64::from_le_bytes(b)
}

/// Programs a copy and waits for it; returns `STATUS`.
fn copy(d: &Edu, src: u64, dst: u64, len: u32, pasid: Option<u32>) -> u32 {
    w64(d, reg::SRC, src);
    w64(d, reg::DST, dst);
    w32(d, reg::LEN, len);
    w32(d, reg::PASID, pasid.map_or(0, |p| p | PASID_VALID));
    w32(d, reg::CMD, CMD_START | CMD_IRQ);
    d.wait_idle();
    r32(d, reg::STATUS)
}

#[test]
fn registers() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (d, _) = edu(&f, ioas);
    assert_eq!(r32(&d, reg::ID), EDU_ID);
    w32(&d, reg::LIVENESS, 0x1234_5678);
    assert_eq!(r32(&d, reg::LIVENESS), !0x1234_5678);
    w32(&d, reg::ID, 0);
    assert_eq!(r32(&d, reg::ID), EDU_ID);
    let mut id = [0u8; 4];
    d.config_read(0, &mut id);
    assert_eq!(u32::from_le_bytes(id), u32::from(EDU_DEVICE) << 16 | 0x1234);
    // Past the registers and other BARs read as ones.
    assert_eq!(r32(&d, 0x800), u32::MAX);
    assert_eq!(d.bars().len(), 1);
}

#[test]
fn copies_land_where_mapped_and_interrupt() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (d, _) = edu(&f, ioas);
    let irqs = Arc::new(AtomicU32::new(0));
    let seen = irqs.clone();
    d.set_irq_sink(Some(Arc::new(move |v| {
        assert_eq!(v, 0);
        seen.fetch_add(1, Ordering::SeqCst);
    })));
    let len = 4 * PAGE_SIZE;
    let (src_va, dst_va) = (f.mmap(len), f.mmap(len));
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    f.write(src_va, &data);
    let src = f.map(ioas, src_va, len).unwrap();
    let dst = f.map(ioas, dst_va, len).unwrap();
    let status = copy(&d, src + 10, dst + 20, (len - 30) as u32, None);
    assert_eq!(status, STATUS_DONE);
    assert_eq!(f.read(dst_va + 20, len - 30), data[10..(len - 20) as usize]);
    assert_eq!(f.read(dst_va, 20), vec![0; 20]);
    assert_eq!(r32(&d, reg::TRANSFERS), 1);
    assert_eq!(irqs.load(Ordering::SeqCst), 1);
    assert_eq!(r32(&d, reg::IRQ_STATUS), 1);
    w32(&d, reg::IRQ_ACK, 1);
    assert_eq!(r32(&d, reg::IRQ_STATUS), 0);
}

#[test]
fn faults_stop_transfers_without_touching_memory() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (d, _) = edu(&f, ioas);
    let (src_va, dst_va) = (f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE));
    f.write(src_va, b"secret");
    let src = f.map(ioas, src_va, PAGE_SIZE).unwrap();
    let dst = f.map(ioas, dst_va, PAGE_SIZE).unwrap();
    let unmapped = 1u64 << 40;

    // To an unmapped IOVA: error, the IOVA reported, a fault recorded.
    assert_eq!(copy(&d, src, unmapped, 6, None), STATUS_DONE | STATUS_ERROR);
    assert_eq!(r64(&d, reg::FAULT_IOVA), unmapped);
    assert!(matches!(
        d.dma().faults().last(),
        Some(DmaFault::Translation { iova, write: true, .. }) if *iova == unmapped
    ));
    // From an unmapped IOVA: nothing written.
    assert_eq!(copy(&d, unmapped, dst, 6, None), STATUS_DONE | STATUS_ERROR);
    assert_eq!(f.read(dst_va, 6), vec![0; 6]);
    assert_eq!(r32(&d, reg::TRANSFERS), 0);

    // After unmap, nothing reaches the old pages.
    assert_eq!(copy(&d, src, dst, 6, None), STATUS_DONE);
    f.write(dst_va, b"\0\0\0\0\0\0");
    f.unmap(ioas, dst, PAGE_SIZE).unwrap();
    assert_eq!(copy(&d, src, dst, 6, None), STATUS_DONE | STATUS_ERROR);
    assert_eq!(f.read(dst_va, 6), vec![0; 6]);

    // Too long.
    assert_eq!(
        copy(&d, src, dst, EDU_MAX_LEN + 1, None),
        STATUS_DONE | STATUS_ERROR
    );

    // Bus mastering off: refused.
    d.config_write(cfg::COMMAND as u32, &cfg::COMMAND_MEMORY.to_le_bytes());
    let dst2 = f.map(ioas, dst_va, PAGE_SIZE).unwrap();
    assert_eq!(copy(&d, src, dst2, 6, None), STATUS_DONE | STATUS_ERROR);
    assert_eq!(f.read(dst_va, 6), vec![0; 6]);
    // Reset clears the registers and the command register.
    d.reset();
    assert_eq!(r32(&d, reg::STATUS), 0);
    let mut cmd = [0u8; 2];
    d.config_read(cfg::COMMAND as u32, &mut cmd);
    assert_eq!(cmd, [0, 0]);
}

#[test]
fn devices_in_different_ioases_are_isolated() {
    let f = Fixture::new();
    let (a, b) = (f.ioas_alloc(), f.ioas_alloc());
    let (da, _) = edu(&f, a);
    let (db, _) = edu(&f, b);
    let (va_a, va_b) = (f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE));
    f.write(va_a, b"only a");
    let iova = 1 << 30;
    f.map_fixed(a, va_a, PAGE_SIZE, iova).unwrap();
    f.map_fixed(b, va_b, PAGE_SIZE, iova + PAGE_SIZE).unwrap();
    // Device b cannot read a's page at a's IOVA; a cannot write into b's.
    assert_eq!(
        copy(&db, iova, iova + PAGE_SIZE, 6, None),
        STATUS_DONE | STATUS_ERROR
    );
    assert_eq!(r64(&db, reg::FAULT_IOVA), iova);
    assert_eq!(
        copy(&da, iova, iova + PAGE_SIZE, 6, None),
        STATUS_DONE | STATUS_ERROR
    );
    assert_eq!(f.read(va_b, 6), vec![0; 6]);
}

#[test]
fn pasid_transfers_use_their_domain() {
    let f = Fixture::new();
    let (a, b) = (f.ioas_alloc(), f.ioas_alloc());
    let (d, idev) = edu(&f, a);
    // The device itself and PASID 5 on PASID-capable HWPTs of two IOASes.
    let rid = f.hwpt_alloc(idev.id, a, IOMMU_HWPT_ALLOC_PASID).unwrap();
    let other = f.hwpt_alloc(idev.id, b, IOMMU_HWPT_ALLOC_PASID).unwrap();
    f.ctx().device_replace(&idev, NO_PASID, rid).unwrap();
    f.ctx().device_attach(&idev, 5, other).unwrap();
    let (va_a, va_b, out) = (f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE));
    f.write(va_a, b"from a");
    f.write(va_b, b"from b");
    let iova = 1 << 30;
    f.map_fixed(a, va_a, PAGE_SIZE, iova).unwrap();
    f.map_fixed(b, va_b, PAGE_SIZE, iova).unwrap();
    f.map_fixed(a, out, PAGE_SIZE, iova + PAGE_SIZE).unwrap();
    f.map_fixed(b, out, PAGE_SIZE, iova + PAGE_SIZE).unwrap();
    assert_eq!(copy(&d, iova, iova + PAGE_SIZE, 6, None), STATUS_DONE);
    assert_eq!(f.read(out, 6), b"from a");
    assert_eq!(copy(&d, iova, iova + PAGE_SIZE, 6, Some(5)), STATUS_DONE);
    assert_eq!(f.read(out, 6), b"from b");
    assert_eq!(
        copy(&d, iova, iova + PAGE_SIZE, 6, Some(6)),
        STATUS_DONE | STATUS_ERROR
    );
}
