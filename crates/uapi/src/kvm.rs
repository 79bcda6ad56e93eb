//! The part of `include/uapi/linux/kvm.h` that the kvm-vfio device needs: the
//! device control API (`KVM_CREATE_DEVICE` on a VM fd, then the
//! `KVM_*_DEVICE_ATTR` ioctls on the device fd it returns) and the VFIO device
//! type's attribute group (`KVM_DEV_VFIO_FILE`).
//!
//! Unlike iommufd's and VFIO's, KVM's ioctl numbers carry their argument's
//! size and direction (`_IOWR`/`_IOW` on type `KVMIO`), and their structs have
//! no leading size field: the kernel copies exactly `size_of` bytes.
//!
//! C programs take these items from the system's `<linux/kvm.h>`; none of them
//! is rendered into a generated header.

#![allow(non_camel_case_types, non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ioctl::{_IOW, _IOWR};

/// The ioctl type byte of KVM.
pub const KVMIO: u32 = 0xAE;

/// `struct kvm_create_device`: argument of [`KVM_CREATE_DEVICE`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct kvm_create_device {
    /// In: `KVM_DEV_TYPE_*`.
    pub type_: u32,
    /// Out: the new device's fd.
    pub fd: u32,
    /// In: `KVM_CREATE_DEVICE_*`.
    pub flags: u32,
}
layout!(kvm_create_device, 12; type_ 0 [as "type"], fd 4, flags 8);

/// `flags` of [`kvm_create_device`]: only ask whether the type could be
/// created; create nothing.
pub const KVM_CREATE_DEVICE_TEST: u32 = 1;

/// `struct kvm_device_attr`: argument of the `KVM_*_DEVICE_ATTR` ioctls.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct kvm_device_attr {
    /// No flags are defined.
    pub flags: u32,
    /// The attribute group, device-defined.
    pub group: u32,
    /// The attribute within the group.
    pub attr: u64,
    /// User address of the attribute's value.
    pub addr: u64,
}
layout!(kvm_device_attr, 24; flags 0, group 4, attr 8, addr 16);

/// `enum kvm_device_type`, stored in [`kvm_create_device::type_`].
pub type kvm_device_type = u32;
/// Freescale MPIC 2.0.
pub const KVM_DEV_TYPE_FSL_MPIC_20: kvm_device_type = 1;
/// Freescale MPIC 4.2.
pub const KVM_DEV_TYPE_FSL_MPIC_42: kvm_device_type = 2;
/// POWER XICS.
pub const KVM_DEV_TYPE_XICS: kvm_device_type = 3;
/// The kvm-vfio pseudo-device.
pub const KVM_DEV_TYPE_VFIO: kvm_device_type = 4;
/// ARM GICv2.
pub const KVM_DEV_TYPE_ARM_VGIC_V2: kvm_device_type = 5;

/// Creates a device in the VM (on a VM fd); its fd is returned in
/// [`kvm_create_device::fd`].
pub const KVM_CREATE_DEVICE: u32 = _IOWR::<kvm_create_device>(KVMIO, 0xe0);
/// Sets a device attribute (on a device fd).
pub const KVM_SET_DEVICE_ATTR: u32 = _IOW::<kvm_device_attr>(KVMIO, 0xe1);
/// Reads a device attribute (on a device fd).
pub const KVM_GET_DEVICE_ATTR: u32 = _IOW::<kvm_device_attr>(KVMIO, 0xe2);
/// Whether the device has an attribute (on a device fd): 0, or ENXIO.
pub const KVM_HAS_DEVICE_ATTR: u32 = _IOW::<kvm_device_attr>(KVMIO, 0xe3);

/// The kvm-vfio device's one attribute group: VFIO files (group or device).
pub const KVM_DEV_VFIO_FILE: u32 = 1;
/// The group's older name.
pub const KVM_DEV_VFIO_GROUP: u32 = KVM_DEV_VFIO_FILE;
/// Attribute: add the VFIO file whose fd (an `s32`) is at `addr`.
pub const KVM_DEV_VFIO_FILE_ADD: u64 = 1;
/// Attribute: remove the VFIO file whose fd (an `s32`) is at `addr`.
pub const KVM_DEV_VFIO_FILE_DEL: u64 = 2;
/// The add attribute's older name.
pub const KVM_DEV_VFIO_GROUP_ADD: u64 = KVM_DEV_VFIO_FILE_ADD;
/// The delete attribute's older name.
pub const KVM_DEV_VFIO_GROUP_DEL: u64 = KVM_DEV_VFIO_FILE_DEL;
/// Attribute (POWER only): attach a group to a sPAPR TCE table.
pub const KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        assert_eq!(KVM_CREATE_DEVICE, 0xc00c_aee0);
        assert_eq!(KVM_SET_DEVICE_ATTR, 0x4018_aee1);
        assert_eq!(KVM_GET_DEVICE_ATTR, 0x4018_aee2);
        assert_eq!(KVM_HAS_DEVICE_ATTR, 0x4018_aee3);
    }
}
