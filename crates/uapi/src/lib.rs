//! The Linux iommufd user-space ABI, as plain Rust data.
//!
//! This crate is the bottom layer of softiommu: the shapes and numbers that a program
//! using `/dev/iommu` exchanges with the kernel, and nothing else. It has no logic —
//! no validation, no ioctl dispatch, no system calls — so that the layers above can
//! decode and encode user memory against a single, checked description of the ABI.
//!
//! - [`iommufd`]: every struct, enum value, flag and ioctl number of
//!   `include/uapi/linux/iommufd.h` (Linux v7.1).
//! - [`mod@test`]: `drivers/iommu/iommufd/iommufd_test.h`, the `IOMMU_TEST_CMD` selftest
//!   ioctl and the mock driver's formats, which the kernel's selftests need.
//! - [`vfio`]: the VFIO type1 container items of `include/uapi/linux/vfio.h` that
//!   an iommufd answers for compatibility.
//! - [`kvm`]: the `include/uapi/linux/kvm.h` items of the kvm-vfio device
//!   (`KVM_CREATE_DEVICE`, device attributes, `KVM_DEV_VFIO_FILE`).
//! - [`ioctl`]: `const fn` versions of the `_IOC` macro family.
//! - [`errno`]: [`Errno`], an open newtype over Linux error numbers.
//! - [`cheader`]: the two C headers above, rendered back from these definitions, for
//!   building C programs (the kernel's selftests among them) on machines whose
//!   `linux/iommufd.h` is older than this crate.
//!
//! # Naming
//!
//! ABI items keep their C names verbatim (`iommu_ioas_map`, `IOMMU_IOAS_MAP`,
//! `IOMMU_IOAS_MAP_FIXED_IOVA`), like `linux-raw-sys`, so that code can be checked
//! against the header by eye and grep finds both. The only renames are forced by
//! Rust: a field called `type` is `type_`, and C anonymous unions become a named
//! field (documented where it happens). A C `enum` becomes a type alias of the same
//! name plus one constant per value, typed with the width of the field the value is
//! stored in.
//!
//! # Layout guarantees
//!
//! Every struct is `#[repr(C)]`, lists its fields in uAPI order including reserved
//! ones, and derives zerocopy's [`FromBytes`](zerocopy::FromBytes),
//! [`IntoBytes`](zerocopy::IntoBytes), [`Immutable`](zerocopy::Immutable) and
//! [`KnownLayout`](zerocopy::KnownLayout), so it converts to and from bytes without
//! `unsafe`. Where C leaves padding, an explicit `__pad` field fills it (zerocopy
//! refuses to expose padding bytes). Each struct has a compile-time assertion of its
//! size and of every field offset, written down by hand from the C layout for
//! 64-bit targets; the integration tests also compare them with the independently
//! generated `iommufd-bindings` crate.
//!
//! This crate contains no `unsafe` code.

#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Asserts at compile time the size of a struct and the offset of each of its fields,
/// and (through a struct literal that is type-checked but never run) that the list
/// names every field. It also implements [`cheader::CLayout`] for the struct: the
/// same field list, with each field's C type taken from its Rust type, is the table
/// the C header is rendered from, so the header cannot describe a field the
/// assertions did not check.
///
/// A field may carry one bracketed note on how C spells it:
/// `[as "type"]` (another C name), `[c "__u64"]` (another C scalar type, for arrays
/// the element type), `[pad]` (explicit Rust padding that C leaves implicit),
/// `[union a, b]` (an anonymous C union of scalars `a` and `b` of the field's type) or
/// `[union a: T, b: U]` (an anonymous C union of anonymous structs laid out as `T`, `U`).
macro_rules! layout {
    ($t:ident, $size:expr; $($field:ident $offset:literal $([$($c:tt)*])?),+ $(,)?) => {
        layout!(@ $t, $size, None; $($field $offset $([$($c)*])?),+);
    };
    ($t:ident, $size:expr; $($field:ident $offset:literal $([$($c:tt)*])?),+ ;
     flex $fty:literal $fname:ident) => {
        layout!(@ $t, $size, Some(($fty, stringify!($fname)));
            $($field $offset $([$($c)*])?),+);
    };
    (@ $t:ident, $size:expr, $flex:expr; $($field:ident $offset:literal $([$($c:tt)*])?),+) => {
        const _: () = {
            assert!(
                core::mem::size_of::<$t>() == $size,
                concat!("size of ", stringify!($t)),
            );
            $(
                assert!(
                    core::mem::offset_of!($t, $field) == $offset,
                    concat!("offset of ", stringify!($t), "::", stringify!($field)),
                );
            )+
            #[allow(dead_code)]
            fn names_every_field() -> $t {
                $t { $($field: Default::default()),+ }
            }
        };
        impl $crate::cheader::CLayout for $t {
            const C_STRUCT: $crate::cheader::CStruct = $crate::cheader::CStruct {
                name: stringify!($t),
                size: core::mem::size_of::<$t>(),
                align: core::mem::align_of::<$t>(),
                fields: &[$(c_field!($t, $field; $($($c)*)?)),+],
                flex: $flex,
            };
        }
    };
}

/// One [`cheader::CField`] of a [`layout!`] list; see there for the notes.
macro_rules! c_field {
    (@ $t:ident, $field:ident, $name:expr, $ty:expr) => {
        $crate::cheader::CField {
            name: $name,
            offset: core::mem::offset_of!($t, $field),
            size: $crate::cheader::field_size(|s: &$t| &s.$field),
            ty: $ty,
        }
    };
    ($t:ident, $field:ident;) => {
        c_field!(@ $t, $field, stringify!($field),
            $crate::cheader::field_ctype(|s: &$t| &s.$field))
    };
    ($t:ident, $field:ident; as $name:literal) => {
        c_field!(@ $t, $field, $name, $crate::cheader::field_ctype(|s: &$t| &s.$field))
    };
    ($t:ident, $field:ident; c $cty:literal) => {
        c_field!(@ $t, $field, stringify!($field),
            $crate::cheader::field_ctype(|s: &$t| &s.$field).with_scalar($cty))
    };
    ($t:ident, $field:ident; pad) => {
        c_field!(@ $t, $field, stringify!($field), $crate::cheader::CType::Padding)
    };
    ($t:ident, $field:ident; union $($member:ident),+) => {
        c_field!(@ $t, $field, stringify!($field), $crate::cheader::CType::Union(&[$(
            $crate::cheader::CField {
                name: stringify!($member),
                offset: 0,
                size: $crate::cheader::field_size(|s: &$t| &s.$field),
                ty: $crate::cheader::field_ctype(|s: &$t| &s.$field),
            }
        ),+]))
    };
    ($t:ident, $field:ident; union $($member:ident: $mt:ty),+) => {
        c_field!(@ $t, $field, stringify!($field), $crate::cheader::CType::Union(&[$(
            $crate::cheader::CField {
                name: stringify!($member),
                offset: 0,
                size: core::mem::size_of::<$mt>(),
                ty: $crate::cheader::CType::Struct(
                    &<$mt as $crate::cheader::CLayout>::C_STRUCT,
                ),
            }
        ),+]))
    };
}

pub mod cheader;
pub mod errno;
pub mod ioctl;
pub mod iommufd;
pub mod kvm;
pub mod test;
pub mod vfio;

pub use errno::Errno;
