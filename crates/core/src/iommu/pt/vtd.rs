//! Intel VT-d page-table formats (VT-d specification rev. 4.x, chapter 9).
//!
//! Two formats, each with 4 levels (48-bit IOVA) or 5 levels (57-bit IOVA), 512
//! entries of 8 bytes per 4 KiB table, 9 index bits per level, leaves of 4 KiB at
//! level 0 and, with the PS bit, 2 MiB at level 1 and 1 GiB at level 2. (The
//! specification numbers the same tables 1 to 5; its "level 2 PS" is our level 1.)
//! Address bits are 12..51 in both; the walker keeps physical addresses below
//! 2^52. Huge leaves keep only the address bits at or above their size: in a
//! first-stage leaf bit 12 is PAT, not an address bit.
//!
//! Second stage ([`VtdSl`], spec 9.8): the tables of a paging domain.
//!
//! | bit   | name | use here |
//! |-------|------|----------|
//! | 0     | R    | read allowed (table: below it) |
//! | 1     | W    | write allowed (table: below it) |
//! | 2     | X    | execute, ignored; written 0 |
//! | 3-5   | EMT  | leaf memory type, written 0 |
//! | 6     | IPAT | leaf, ignore PAT, written 0 |
//! | 7     | PS   | leaf at level 1 (2 MiB) or 2 (1 GiB) |
//! | 8     | A    | accessed, set by DMA (with SL A/D enabled) |
//! | 9     | D    | dirty, leaf, set by DMA writes |
//! | 11    | SNP  | leaf, snoop: set for `IOMMU_CACHE` |
//! | 12-51 | ADDR | table or page address |
//!
//! An entry is present when R or W is set (the second stage has no P bit). A table
//! pointer is written with R|W, so a leaf's R and W alone decide its permissions.
//!
//! First stage ([`VtdFl`], spec 9.7; the x86 IA-32e format): what a guest writes
//! for a nested domain's stage 1, walked read-only with
//! [`walk_foreign`](super::walk_foreign), and a format an owned table can use too.
//!
//! | bit   | name | use here |
//! |-------|------|----------|
//! | 0     | P    | present |
//! | 1     | R/W  | writes allowed; needed at every level of the walk |
//! | 2     | U/S  | user; written 1 at every level, as the kernel does |
//! | 3     | PWT  | written 0 |
//! | 4     | PCD  | written 0 |
//! | 5     | A    | accessed, set by DMA |
//! | 6     | D    | dirty, leaf, set by DMA writes |
//! | 7     | PS   | leaf at level 1 (2 MiB) or 2 (1 GiB) |
//! | 8     | G    | leaf, global, written 0 |
//! | 12-51 | ADDR | table or page address (bit 12 of a huge leaf is PAT) |
//! | 63    | XD   | execute disable, written 0, ignored |
//!
//! Reads are allowed by P alone, so a first-stage leaf cannot be write-only: a map
//! with only `IOMMU_WRITE` reads back as read-write. `IOMMU_CACHE` has no bit (the
//! PASID entry's PGSNP does that job). IA-32e addresses must be canonical; the
//! kernel keeps first-stage domains in the lower half, and so does
//! [`VtdFl::max_va_lg2`] (47 or 56 bits). The kernel presets A and D in the leaves it
//! writes to spare the hardware the update; here they start clear, so they show
//! what DMA did. Reserved-bit checks are not modelled: a walk ignores them.

use super::PtFormat;
use crate::error::{Error, Result};
use crate::iommu::{IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE};

/// Address bits 12..51 of an entry.
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Second stage: read.
pub const SL_R: u64 = 1 << 0;
/// Second stage: write.
pub const SL_W: u64 = 1 << 1;
/// Second stage: execute.
pub const SL_X: u64 = 1 << 2;
/// Second stage: extended memory type, bits 3-5.
pub const SL_EMT_MASK: u64 = 0b111 << 3;
/// Second stage: ignore PAT.
pub const SL_IPAT: u64 = 1 << 6;
/// Second stage: page size (leaf above level 0).
pub const SL_PS: u64 = 1 << 7;
/// Second stage: accessed.
pub const SL_A: u64 = 1 << 8;
/// Second stage: dirty.
pub const SL_D: u64 = 1 << 9;
/// Second stage: snoop.
pub const SL_SNP: u64 = 1 << 11;

/// First stage: present.
pub const FL_P: u64 = 1 << 0;
/// First stage: read/write.
pub const FL_RW: u64 = 1 << 1;
/// First stage: user/supervisor.
pub const FL_US: u64 = 1 << 2;
/// First stage: page write-through.
pub const FL_PWT: u64 = 1 << 3;
/// First stage: page cache disable.
pub const FL_PCD: u64 = 1 << 4;
/// First stage: accessed.
pub const FL_A: u64 = 1 << 5;
/// First stage: dirty.
pub const FL_D: u64 = 1 << 6;
/// First stage: page size (leaf above level 0).
pub const FL_PS: u64 = 1 << 7;
/// First stage: global.
pub const FL_G: u64 = 1 << 8;
/// First stage: execute disable.
pub const FL_XD: u64 = 1 << 63;

/// Physical address bits both formats can hold.
const PHYS_LG2: u32 = 52;

fn check_levels(levels: u32) -> Result<()> {
    match levels {
        4 | 5 => Ok(()),
        _ => Err(Error::NotSupported("VT-d tables have 4 or 5 levels")),
    }
}

/// The address bits of a leaf at `level` (4 KiB, 2 MiB or 1 GiB aligned).
fn leaf_addr(entry: u64, level: u32) -> u64 {
    entry & ADDR_MASK & !((1u64 << (12 + 9 * level)) - 1)
}

/// VT-d second-stage format with `levels` levels; `max_leaf_level` 0, 1 or 2 says
/// up to which level leaves may be written (the SLLPS capability: 1 = 2 MiB,
/// 2 = 1 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdSl {
    levels: u32,
    max_leaf_level: u32,
}

impl VtdSl {
    /// A second-stage format of 4 (48-bit) or 5 (57-bit) levels with 2 MiB and
    /// 1 GiB leaves.
    pub fn new(levels: u32) -> Result<Self> {
        check_levels(levels)?;
        Ok(VtdSl {
            levels,
            max_leaf_level: 2,
        })
    }

    /// The same format with leaves only up to `level` (0: 4 KiB only).
    pub fn with_max_leaf_level(self, level: u32) -> Self {
        VtdSl {
            max_leaf_level: level.min(2),
            ..self
        }
    }
}

impl PtFormat for VtdSl {
    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }
    #[inline]
    fn item_lg2(&self, level: u32) -> u32 {
        12 + 9 * level
    }
    fn max_phys_lg2(&self) -> u32 {
        PHYS_LG2
    }
    #[inline]
    fn leaf_ok(&self, level: u32) -> bool {
        level <= self.max_leaf_level
    }
    #[inline]
    fn present(&self, entry: u64) -> bool {
        entry & (SL_R | SL_W) != 0
    }
    #[inline]
    fn is_leaf(&self, entry: u64, level: u32) -> bool {
        level == 0 || entry & SL_PS != 0
    }
    #[inline]
    fn make_table(&self, table_phys: u64) -> u64 {
        (table_phys & ADDR_MASK) | SL_R | SL_W
    }
    #[inline]
    fn table_phys(&self, entry: u64) -> u64 {
        entry & ADDR_MASK
    }
    #[inline]
    fn table_prot(&self, entry: u64) -> u32 {
        sl_prot(entry)
    }
    #[inline]
    fn make_leaf(&self, phys: u64, level: u32, prot: u32) -> u64 {
        let mut e = phys & ADDR_MASK;
        if prot & IOMMU_READ != 0 {
            e |= SL_R;
        }
        if prot & IOMMU_WRITE != 0 {
            e |= SL_W;
        }
        if prot & IOMMU_CACHE != 0 {
            e |= SL_SNP;
        }
        if level > 0 {
            e |= SL_PS;
        }
        e
    }
    #[inline]
    fn leaf_phys(&self, entry: u64, level: u32) -> u64 {
        leaf_addr(entry, level)
    }
    #[inline]
    fn leaf_prot(&self, entry: u64) -> u32 {
        sl_prot(entry) | if entry & SL_SNP != 0 { IOMMU_CACHE } else { 0 }
    }
    #[inline]
    fn accessed_mask(&self) -> u64 {
        SL_A
    }
    #[inline]
    fn dirty_mask(&self) -> u64 {
        SL_D
    }
}

fn sl_prot(entry: u64) -> u32 {
    let mut prot = 0;
    if entry & SL_R != 0 {
        prot |= IOMMU_READ;
    }
    if entry & SL_W != 0 {
        prot |= IOMMU_WRITE;
    }
    prot
}

/// VT-d first-stage (IA-32e) format with `levels` levels; `max_leaf_level` as for
/// [`VtdSl`] (the FL1GP capability gives 1 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdFl {
    levels: u32,
    max_leaf_level: u32,
}

impl VtdFl {
    /// A first-stage format of 4 (47-bit lower half) or 5 (56-bit) levels with
    /// 2 MiB and 1 GiB leaves.
    pub fn new(levels: u32) -> Result<Self> {
        check_levels(levels)?;
        Ok(VtdFl {
            levels,
            max_leaf_level: 2,
        })
    }

    /// The same format with leaves only up to `level` (0: 4 KiB only).
    pub fn with_max_leaf_level(self, level: u32) -> Self {
        VtdFl {
            max_leaf_level: level.min(2),
            ..self
        }
    }
}

impl PtFormat for VtdFl {
    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }
    #[inline]
    fn item_lg2(&self, level: u32) -> u32 {
        12 + 9 * level
    }
    /// The lower canonical half only.
    fn max_va_lg2(&self) -> u32 {
        12 + 9 * self.levels - 1
    }
    fn max_phys_lg2(&self) -> u32 {
        PHYS_LG2
    }
    #[inline]
    fn leaf_ok(&self, level: u32) -> bool {
        level <= self.max_leaf_level
    }
    #[inline]
    fn present(&self, entry: u64) -> bool {
        entry & FL_P != 0
    }
    #[inline]
    fn is_leaf(&self, entry: u64, level: u32) -> bool {
        level == 0 || entry & FL_PS != 0
    }
    #[inline]
    fn make_table(&self, table_phys: u64) -> u64 {
        (table_phys & ADDR_MASK) | FL_P | FL_RW | FL_US
    }
    #[inline]
    fn table_phys(&self, entry: u64) -> u64 {
        entry & ADDR_MASK
    }
    #[inline]
    fn table_prot(&self, entry: u64) -> u32 {
        fl_prot(entry)
    }
    #[inline]
    fn make_leaf(&self, phys: u64, level: u32, prot: u32) -> u64 {
        let mut e = (phys & ADDR_MASK) | FL_P | FL_US;
        if prot & IOMMU_WRITE != 0 {
            e |= FL_RW;
        }
        if level > 0 {
            e |= FL_PS;
        }
        e
    }
    #[inline]
    fn leaf_phys(&self, entry: u64, level: u32) -> u64 {
        leaf_addr(entry, level)
    }
    #[inline]
    fn leaf_prot(&self, entry: u64) -> u32 {
        fl_prot(entry)
    }
    #[inline]
    fn accessed_mask(&self) -> u64 {
        FL_A
    }
    #[inline]
    fn dirty_mask(&self) -> u64 {
        FL_D
    }
}

fn fl_prot(entry: u64) -> u32 {
    if entry & FL_P == 0 {
        return 0;
    }
    IOMMU_READ | if entry & FL_RW != 0 { IOMMU_WRITE } else { 0 }
}
