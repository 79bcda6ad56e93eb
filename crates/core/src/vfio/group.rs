//! The legacy group path: one open of `/dev/vfio/<N>` (the kernel's
//! `drivers/vfio/group.c`, with `/dev/vfio/vfio` built as an iommufd, as
//! `CONFIG_IOMMUFD_VFIO_CONTAINER` builds it).
//!
//! A [`GroupFile`] exists only while the group's node is open, and the node is
//! single-open ([`Vfio::open_group`]); it excludes binding any device of the
//! group through its cdev, and the other way round. The "container" it is
//! attached to is an iommufd context (an open `/dev/iommu` or
//! `/dev/vfio/vfio`): setting it makes sure the context has a compat IOAS, and
//! claims nothing. `VFIO_GROUP_GET_DEVICE_FD` opens a device of the group
//! through that context: the first open of a device claims the group's DMA
//! for the context, binds the device and attaches it to the compat IOAS, so
//! that the type1 ioctls on the container reach it; further opens share that.
//! Device files outlive the group file (closing it only unsets the
//! container); the last close of a device undoes its open.
//!
//! Lock: `container` guards the context; it is held across a device open (so
//! the container cannot change under it) and taken before a device's state.

use super::device::DeviceFile;
use super::Vfio;
use crate::error::{Error, Result};
use crate::iommufd::Iommufd;
use crate::machine::host::GroupOwner;
use crate::machine::Bdf;
use crate::uapi::vfio::{VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE};
use crate::uapi::Errno;
use std::sync::{Arc, Mutex, MutexGuard};

/// One open of a VFIO group's node. Dropping it is the node's close.
#[derive(Debug)]
pub struct GroupFile {
    vfio: Arc<Vfio>,
    group: u32,
    /// The iommufd context set as the container, if any.
    container: Mutex<Option<Iommufd>>,
}

/// The length of a UUID's text (`8-4-4-4-12`).
const UUID_TEXT_LEN: usize = 36;

impl GroupFile {
    pub(super) fn new(vfio: Arc<Vfio>, group: u32) -> GroupFile {
        GroupFile {
            vfio,
            group,
            container: Mutex::new(None),
        }
    }

    /// The group's number.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// The VFIO devices registered in the group.
    pub fn devices(&self) -> Vec<Arc<super::VfioDevice>> {
        let mut devs = self.vfio.devices();
        devs.retain(|d| d.group == self.group);
        devs
    }

    fn container(&self) -> MutexGuard<'_, Option<Iommufd>> {
        self.container.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `VFIO_GROUP_GET_STATUS`: `CONTAINER_SET | VIABLE` once a container is
    /// set; otherwise `VIABLE` when no member is on a DMA kernel driver and
    /// nobody owns the group's DMA. ENODEV when the group is gone.
    pub fn status(&self) -> Result<u32> {
        if self.container().is_some() {
            return Ok(VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE);
        }
        let host = self.vfio.host();
        let owner = host.owner(self.group).ok_or(Error::Other {
            what: "IOMMU group gone",
            errno: Errno::ENODEV,
        })?;
        let viable = host.viable(self.group) && owner == GroupOwner::Kernel { users: 0 };
        Ok(if viable { VFIO_GROUP_FLAGS_VIABLE } else { 0 })
    }

    /// Whether a container is set.
    pub fn has_container(&self) -> bool {
        self.container().is_some()
    }

    /// `VFIO_GROUP_SET_CONTAINER` with `ctx`: see
    /// [`GroupFile::set_container_with`].
    pub fn set_container(&self, ctx: &Iommufd) -> Result<()> {
        self.set_container_with(|| Ok(ctx.clone()))
    }

    /// `VFIO_GROUP_SET_CONTAINER`, with the context found by `resolve`, called
    /// where the kernel looks at the file's kind: after the EINVAL for a
    /// container already set. Creates the context's compat IOAS if it has
    /// none; claims no DMA ownership.
    pub fn set_container_with(&self, resolve: impl FnOnce() -> Result<Iommufd>) -> Result<()> {
        let mut container = self.container();
        if container.is_some() {
            return Err(Error::Invalid("the group has a container"));
        }
        let ctx = resolve()?;
        ctx.vfio_compat_ioas_create()?;
        *container = Some(ctx);
        Ok(())
    }

    /// `VFIO_GROUP_UNSET_CONTAINER`: EINVAL without a container. Devices
    /// opened through it stay open.
    pub fn unset_container(&self) -> Result<()> {
        self.container()
            .take()
            .map(drop)
            .ok_or(Error::Invalid("the group has no container"))
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` with the device's `name` (without its NUL):
    /// a BDF as `0000:01:00.0`, optionally followed by options. ENODEV when no
    /// device of the group matches; EINVAL for an unknown option or a VF
    /// token (our functions take none), and without a container; then the
    /// errors of the first open (EPERM when a sibling's driver uses DMA, the
    /// compat IOAS's absence or attach errors).
    pub fn get_device_fd(&self, name: &[u8]) -> Result<DeviceFile> {
        let mut found = None;
        for d in self.devices() {
            if match_name(d.bdf, name)? {
                found = Some(d);
                break;
            }
        }
        let dev = found.ok_or(Error::Other {
            what: "no such device in the group",
            errno: Errno::ENODEV,
        })?;
        let container = self.container();
        let ctx = container
            .as_ref()
            .ok_or(Error::Invalid("the group has no container"))?;
        dev.open_bound(&self.vfio, ctx, true)?;
        Ok(DeviceFile::new_group_path(self.vfio.clone(), dev))
    }
}

/// vfio-pci's name match: the function's name, then nothing or a space and
/// options separated by spaces. Another character after the name is no
/// match; an option other than one `vf_token=<uuid>` is EINVAL, and so is a
/// token at all, as our functions are neither PFs nor VFs.
fn match_name(bdf: Bdf, name: &[u8]) -> Result<bool> {
    let ours = bdf.to_string();
    let Some(mut rest) = name.strip_prefix(ours.as_bytes()) else {
        return Ok(false);
    };
    if rest.first().is_some_and(|c| *c != b' ') {
        return Ok(false);
    }
    let mut token = false;
    while let Some((&c, tail)) = rest.split_first() {
        if c == b' ' {
            rest = tail;
            continue;
        }
        match rest.strip_prefix(b"vf_token=") {
            Some(t) if !token && t.len() >= UUID_TEXT_LEN && is_uuid(&t[..UUID_TEXT_LEN]) => {
                token = true;
                rest = &t[UUID_TEXT_LEN..];
            }
            _ => return Err(Error::Invalid("unknown option after the device name")),
        }
    }
    if token {
        return Err(Error::Invalid("VF token for a device that takes none"));
    }
    Ok(true)
}

/// Whether `s` is a UUID's text: hex digits with dashes at 8, 13, 18, 23.
fn is_uuid(s: &[u8]) -> bool {
    s.len() == UUID_TEXT_LEN
        && s.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Drop for GroupFile {
    fn drop(&mut self) {
        self.container().take();
        self.vfio.close_group(self.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "01234567-89ab-cdef-0123-456789abcdef";

    #[test]
    fn names() {
        let bdf = Bdf::new(1, 0, 0).unwrap();
        let m = |s: &str| match_name(bdf, s.as_bytes()).map_err(|e| e.errno());
        assert_eq!(m("0000:01:00.0"), Ok(true));
        assert_eq!(m("0000:01:00.0  "), Ok(true));
        assert_eq!(m("0000:01:00.1"), Ok(false));
        assert_eq!(m("0000:01:00.0x"), Ok(false));
        assert_eq!(m("01:00.0"), Ok(false));
        assert_eq!(m(""), Ok(false));
        assert_eq!(m("0000:01:00.0 foo"), Err(Errno::EINVAL));
        assert_eq!(
            m(&format!("0000:01:00.0 vf_token={UUID}")),
            Err(Errno::EINVAL)
        );
        assert_eq!(m("0000:01:00.0 vf_token=0123"), Err(Errno::EINVAL));
        assert!(is_uuid(UUID.as_bytes()));
        assert!(!is_uuid(b"01234567x89ab-cdef-0123-456789abcdef"));
    }
}
