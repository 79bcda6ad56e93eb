//! `libsoftiommu_preload.so`: unmodified programs' `/dev/iommu` answered by softiommu.
//!
//! Loaded with `LD_PRELOAD` (see `softiommu run`), this library defines the libc
//! functions through which a program reaches a file descriptor — `open*`,
//! `close*`, `dup*`, `fcntl`, `ioctl`, `read`, `write`, `pread`, `pwrite`, `mmap` —
//! and answers them itself for *our* descriptors: opens of `/dev/iommu`,
//! `/dev/vfio/vfio` and `/dev/vfio/devices/vfioN` (the devices of the machine
//! `SOFTIOMMU_MACHINE` describes, see `machine.rs`), the selftest access fds that
//! `IOMMU_TEST_OP_CREATE_ACCESS` installs, and fault queues. Every other call goes to the
//! real libc function, resolved once with `dlsym(RTLD_NEXT)`, untouched and with
//! its `errno`.
//!
//! # Descriptors
//!
//! Each of our descriptors is backed by a real kernel descriptor: an empty,
//! sealed memfd (`softiommu:iommufd`, `softiommu:access`). So fd numbers are
//! allocated by the kernel and never collide with the program's; `O_CLOEXEC`,
//! `F_SETFD`, `poll` (the default mask, as for the kernel's iommufd, which has no
//! poll op), `fork` and `exec` behave as they do for the real file; and a
//! descriptor the program passes somewhere we do not look is still an open file.
//!
//! The fd table (`table.rs`) maps fd numbers to *open file descriptions* (`Desc`):
//! one `Desc` per open (identified by its memfd's `(st_dev, st_ino)`), shared by
//! every fd that `dup`, `dup2`, `dup3` or `fcntl(F_DUPFD*)` made from it. The
//! `Desc` owns the [`softiommu::abi::File`]; when the last fd of a description is
//! closed (or replaced by `dup2`), the `File` is dropped, which closes the iommufd
//! context and releases every pin — the kernel's `release` on the last `fput`.
//! Changes to the numbers of our fds (close, dup onto, close_range) are made
//! under the table's write lock, so no other thread ever sees a number that the
//! kernel has already given to another file as ours.
//!
//! The question every interposed call asks first — is this fd ours? — costs one
//! atomic load while the program has none of our fds, and a shared read lock
//! plus an index otherwise; never a system call.
//!
//! # KVM's VFIO device
//!
//! One ioctl is answered on a descriptor that is not ours: `KVM_CREATE_DEVICE`
//! of type `KVM_DEV_TYPE_VFIO`, on any fd (a real KVM VM fd, or `/dev/null`
//! standing in for one). Recognising it costs one comparison of the request
//! number for every other ioctl; only for that number are the argument's first
//! four bytes read (safely: an unreadable argument leaves the call to the
//! kernel). The answer is our kvm-vfio device (memfd `softiommu:kvm-vfio`),
//! whose `KVM_DEV_VFIO_FILE_ADD/DEL` take our VFIO files. The VM is the open
//! file description of the fd the call came on (compared with `kcmp`, or by
//! file identity where `kcmp` is refused); we hold a duplicate of it while its
//! device lives, as the kernel's device holds its VM. Every other call on that
//! fd, `KVM_CREATE_DEVICE` of other types included, goes to the kernel. The
//! VM's non-coherent DMA registrations are trace lines:
//! `kvm-vfio: VM noncoherent DMA: registered` / `unregistered`.
//!
//! # Re-entry, errno, panics
//!
//! Our own code (the core reading `/proc/self/maps`, `dup` of
//! a file to pin, the trace file) calls the same libc functions, which resolve to
//! ours. A thread-local flag, set while we work, sends those calls straight to
//! libc. Results follow libc: `-1` (or `MAP_FAILED`) with `errno`; on success
//! `errno` is left as the program had it. No panic crosses the FFI boundary:
//! every entry point runs under `catch_unwind`, and a panic becomes `-1`/`EIO`.
//! A bad pointer from the program is `EFAULT`, never a fault in our code: see
//! below.
//!
//! # Faults
//!
//! Every read and write of the program's memory (paths, ioctl arguments, pinned
//! pages that the program may have unmapped) is `softiommu_safe_copy`
//! (`safecopy.c`, registered with the core at load): a `memcpy` under our own
//! SIGSEGV/SIGBUS handler, which turns a fault inside it into EFAULT: no system
//! call, where `process_vm_readv` costs one per copy. It falls back to
//! `process_vm_readv` once the program blocks those signals (a blocked fault
//! kills, no handler runs).
//! To keep that handler, `sigaction`, `signal`, `bsd_signal`, `sysv_signal`
//! (and `__` aliases) are interposed for SIGSEGV and SIGBUS: the program's
//! handler is recorded and reported back as its own, and any fault that is not
//! ours reaches it as the kernel would deliver it (or takes the default
//! action). `sigprocmask`/`pthread_sigmask` pass through, watched for blocking.
//! A program that installs a handler with the raw system call, or with the
//! System V `sigset`/`sigignore`, replaces ours unseen.
//!
//! # fork
//!
//! `pthread_atfork` handlers take the table's locks (and the gate that every call
//! on our fds holds, so no context lock is mid-operation either) before `fork`
//! and release them after in both processes. The child gets its own *copy* of
//! every context — objects, mappings, pins — and its own process memory. The
//! kernel would instead share one context between parent and child (an inherited
//! fd is the same open file); programs that use an iommufd from both sides of a
//! fork see a difference. The kernel's selftests only use the child's copy to
//! test that the parent's pins survive.
//!
//! # sysfs
//!
//! The sysfs lookups VFIO clients make about our machine's functions
//! (`<dev>/iommu_group`, `<dev>/vfio-dev/`, `vendor`, `driver`,
//! `iommu_groups/N/devices/`, and writes to `drivers/<drv>/bind`, `unbind`
//! and `<dev>/driver_override`) are answered by `sysfs.rs`: read-only sysfs
//! is a real tree in a private temporary directory, to which `open*`,
//! `opendir`, `stat`/`lstat`/`fstatat`/`statx` (and the `__xstat` family),
//! `access`/`faccessat`/`euidaccess`, `readlink`/`readlinkat`, the
//! `getxattr`/`listxattr` family and `fopen` on those absolute paths are redirected; the three writable attributes are our
//! descriptors whose writes reach the host (through `fopen`, a
//! `fopencookie` stream). Any other path is libc's.
//!
//! # Tracing
//!
//! With `SOFTIOMMU_TRACE=stderr` (or a file path) every call on our fds and every
//! open of our paths is logged, one line each, decoded like strace does:
//! `ioctl(3, IOMMU_IOAS_MAP, {...}) = 0 => {...}`, `... = -1 ENOENT`.
//!
//! # What is not seen
//!
//! Calls that bypass the dynamic symbols: raw `syscall(SYS_ioctl, ...)`, libc's
//! internal opens (`fopen` of anything but our sysfs paths), descriptors received over `SCM_RIGHTS` or closed
//! with a raw `close` system call. A descriptor inherited across `exec` is only
//! an empty memfd in the new program.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod ffi;
mod machine;
mod ops;
mod path;
mod process;
mod real;
mod safecopy;
mod sysfs;
mod table;
mod trace;
