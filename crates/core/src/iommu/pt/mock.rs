//! A toy page-table format, so that the walker is proven on more than one shape.
//!
//! Two levels, 2 KiB pages at level 0 and 1 MiB leaves at level 1 (the sizes of the
//! kernel selftest's mock IOMMU), 512 entries per table: a 29-bit (512 MiB) IOVA
//! space. Nothing in it resembles VT-d on purpose: present, read and write are
//! separate bits and the leaf marker is its own bit.
//!
//! | bit   | name  | use |
//! |-------|-------|-----|
//! | 0     | V     | valid (present) |
//! | 1     | R     | read |
//! | 2     | W     | write |
//! | 3     | LEAF  | leaf at level 1 |
//! | 4     | A     | accessed |
//! | 5     | D     | dirty |
//! | 11-51 | ADDR  | table or page address |

use super::PtFormat;
use crate::iommu::{IOMMU_READ, IOMMU_WRITE};

/// Valid.
pub const MOCK_V: u64 = 1 << 0;
/// Read.
pub const MOCK_R: u64 = 1 << 1;
/// Write.
pub const MOCK_W: u64 = 1 << 2;
/// Leaf at level 1.
pub const MOCK_LEAF: u64 = 1 << 3;
/// Accessed.
pub const MOCK_A: u64 = 1 << 4;
/// Dirty.
pub const MOCK_D: u64 = 1 << 5;
/// Address bits 11..51.
pub const MOCK_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F800;

/// The toy format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MockPt;

impl PtFormat for MockPt {
    fn levels(&self) -> u32 {
        2
    }
    fn item_lg2(&self, level: u32) -> u32 {
        11 + 9 * level
    }
    fn max_phys_lg2(&self) -> u32 {
        52
    }
    fn leaf_ok(&self, level: u32) -> bool {
        level <= 1
    }
    fn present(&self, entry: u64) -> bool {
        entry & MOCK_V != 0
    }
    fn is_leaf(&self, entry: u64, level: u32) -> bool {
        level == 0 || entry & MOCK_LEAF != 0
    }
    fn make_table(&self, table_phys: u64) -> u64 {
        (table_phys & MOCK_ADDR_MASK) | MOCK_V | MOCK_R | MOCK_W
    }
    fn table_phys(&self, entry: u64) -> u64 {
        entry & MOCK_ADDR_MASK
    }
    fn table_prot(&self, entry: u64) -> u32 {
        prot(entry)
    }
    fn make_leaf(&self, phys: u64, level: u32, prot: u32) -> u64 {
        let mut e = (phys & MOCK_ADDR_MASK) | MOCK_V;
        if prot & IOMMU_READ != 0 {
            e |= MOCK_R;
        }
        if prot & IOMMU_WRITE != 0 {
            e |= MOCK_W;
        }
        if level > 0 {
            e |= MOCK_LEAF;
        }
        e
    }
    fn leaf_phys(&self, entry: u64, level: u32) -> u64 {
        entry & MOCK_ADDR_MASK & !((1u64 << self.item_lg2(level)) - 1)
    }
    fn leaf_prot(&self, entry: u64) -> u32 {
        prot(entry)
    }
    fn accessed_mask(&self) -> u64 {
        MOCK_A
    }
    fn dirty_mask(&self) -> u64 {
        MOCK_D
    }
}

fn prot(entry: u64) -> u32 {
    let mut prot = 0;
    if entry & MOCK_R != 0 {
        prot |= IOMMU_READ;
    }
    if entry & MOCK_W != 0 {
        prot |= IOMMU_WRITE;
    }
    prot
}
