//! ABI identity: how the host decides, before it calls anything, that a
//! module was built against a `plugin-api` it can talk to.
//!
//! Every module exports one data symbol, [`MODULE_HEADER_SYMBOL`], holding a
//! [`ModuleHeader`]. The header's own layout is frozen forever (magic,
//! header version, then fields that never move), so a host can always read
//! it, even from a module built against a far newer or older crate. It
//! carries the ABI version and a [`TypeSig`] for every type that crosses the
//! boundary: name, size, alignment, and a fingerprint of its fields, their
//! declared types and offsets. The host compares these against its own list
//! and refuses the module with an error naming the first type that differs.
//!
//! This is our own check rather than abi_stable's `RootModule` loading: that
//! one never unloads a library and keeps global maps that grow with every
//! reload (see `ARCHITECTURE.md`).

use core::ffi::c_void;

/// Breaking ABI version. A module whose major differs is refused.
#[cfg(not(feature = "test-skew-version"))]
pub const ABI_MAJOR: u32 = 6;
#[cfg(feature = "test-skew-version")]
pub const ABI_MAJOR: u32 = 999;

/// Additive ABI version: entries appended to a table (marked `[since N]`
/// in its declaration). A module built against `MAJOR.x` loads on a host
/// `MAJOR.y` with `y >= x` (the host checks the module's types as they
/// were at minor `x`); an older host refuses it, naming the entries it
/// needs. 6.1 added `HostServices::core_ready`; 6.2 the live-reload
/// contract (`ModuleDescriptor::handover`, `HostServices::handover_take` and
/// `handover_forward`, and the types `HandoverTable`, `HandoverSink`,
/// `DeliveryDesc`); 6.3 `HostServices::session_echo`.
#[cfg(not(any(
    feature = "test-abi-minor-0",
    feature = "test-abi-minor-1",
    feature = "test-abi-minor-2"
)))]
pub const ABI_MINOR: u32 = 3;
#[cfg(all(
    feature = "test-abi-minor-2",
    not(any(feature = "test-abi-minor-0", feature = "test-abi-minor-1"))
))]
pub const ABI_MINOR: u32 = 2;
#[cfg(feature = "test-abi-minor-1")]
pub const ABI_MINOR: u32 = 1;
#[cfg(all(feature = "test-abi-minor-0", not(feature = "test-abi-minor-1")))]
pub const ABI_MINOR: u32 = 0;

/// Boundary types added after a major's first minor, with the minor that
/// added them: a module of an older minor does not describe them, and the
/// host does not ask it to.
pub const TYPES_SINCE: &[(&str, u32)] = &[
    ("HandoverSink", 2),
    ("DeliveryDesc", 2),
    ("HandoverTable", 2),
];

/// The minor that added the boundary type `name` (0 for the major's own).
pub fn type_since(name: &str) -> u32 {
    TYPES_SINCE
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, m)| *m)
}

/// How many minors of one major a [`TypeSig`] can describe.
pub const MAX_MINOR: usize = 8;

/// The version of this crate, as cargo knows it.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// First eight bytes of every module header.
pub const MODULE_MAGIC: [u8; 8] = *b"HOTSWMOD";

/// Version of the [`ModuleHeader`] layout itself.
pub const HEADER_VERSION: u32 = 1;

/// The name of the data symbol every module exports (NUL-terminated, as
/// `dlsym` wants it).
pub const MODULE_HEADER_SYMBOL: &[u8] = b"hotswitch_module_header\0";

/// A borrowed string or byte slice crossing the boundary: a pointer and a
/// length, valid only for the duration of the call it is passed to (or, for
/// `from_static`, for as long as the library that holds it is loaded).
///
/// The receiving side copies what it wants to keep: the host never keeps a
/// plugin's `RStr` past the call, so nothing points into an unloaded library.
///
/// ```
/// use hotswitch_plugin_api::RStr;
/// let owned = String::from("sofia/internal/1000");
/// let r = RStr::new(&owned);
/// assert_eq!(unsafe { r.to_str() }, "sofia/internal/1000");
/// assert!(RStr::EMPTY.is_empty());
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RStr {
    ptr: *const u8,
    len: usize,
}

// An RStr is a read-only view; sending it between threads is as safe as
// sending the `&str` it was made from.
unsafe impl Send for RStr {}
unsafe impl Sync for RStr {}

impl RStr {
    /// The empty string (a null pointer and a zero length).
    pub const EMPTY: RStr = RStr {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A view of a `'static` string; usable in `static` items.
    pub const fn from_static(s: &'static str) -> RStr {
        RStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// A view of `s`. The caller keeps `s` alive for as long as the view is
    /// used.
    pub fn new(s: &str) -> RStr {
        RStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// A view of arbitrary bytes (not necessarily UTF-8).
    pub fn from_bytes(b: &[u8]) -> RStr {
        RStr {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// True when the view holds no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes behind the view.
    ///
    /// # Safety
    /// The memory the view was made from must still be alive.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(self.ptr, self.len)
        }
    }

    /// The text behind the view; invalid UTF-8 is replaced, never trusted.
    ///
    /// # Safety
    /// The memory the view was made from must still be alive.
    pub unsafe fn to_str<'a>(self) -> std::borrow::Cow<'a, str> {
        let bytes = self.as_bytes();
        // The fast (vectorised) check first; the lossy walk only for bytes
        // that are not UTF-8.
        match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        }
    }
}

impl core::fmt::Debug for RStr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RStr({:p}, {})", self.ptr, self.len)
    }
}

/// The signature of one boundary type: what the host compares.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TypeSig {
    /// The type's name, e.g. `ApiInterface`.
    pub name: RStr,
    /// Its fields and their declared types, in order (for error messages).
    pub fields: RStr,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// FNV-1a over the field names and declared types (white space
    /// ignored), each field type's [`AbiHash`] (a function pointer's whole
    /// signature), every field offset, size and alignment.
    pub fingerprint: u64,
    /// The fingerprint as the type was at each minor `0..MAX_MINOR` of this
    /// major (fields `[since N]` left out below `N`).
    pub history: [u64; MAX_MINOR],
}

/// One field of a boundary struct, for its signature.
#[derive(Clone, Copy, Debug)]
pub struct FieldSig {
    /// `name: Type`, as declared.
    pub text: &'static str,
    /// The minor that added it (0: the major's first).
    pub since: u32,
    /// Its type's [`AbiHash`].
    pub hash: u64,
    /// `offset_of`.
    pub offset: usize,
    /// `size_of` its type.
    pub size: usize,
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// A struct's fingerprint with only the fields a module of `minor` knows.
const fn struct_fingerprint(
    name: &str,
    size: usize,
    align: usize,
    fields: &[FieldSig],
    minor: u32,
) -> u64 {
    let mut h = fnv_text(FNV_BASIS, name.as_bytes());
    let mut end = 0;
    let mut all = true;
    let mut i = 0;
    while i < fields.len() {
        let f = &fields[i];
        if f.since <= minor {
            h = fnv_text(h, f.text.as_bytes());
            h = fnv_word(h, f.hash);
            h = fnv_word(h, f.offset as u64);
            end = f.offset + f.size;
        } else {
            all = false;
        }
        i += 1;
    }
    let size = if all {
        size
    } else {
        end.div_ceil(align) * align
    };
    h = fnv_word(h, size as u64);
    fnv_word(h, align as u64)
}

impl TypeSig {
    /// Builds a signature at compile time.
    pub const fn new(
        name: &'static str,
        fields: &'static str,
        size: usize,
        align: usize,
        offsets: &[usize],
    ) -> TypeSig {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        h = fnv_text(h, name.as_bytes());
        h = fnv_text(h, fields.as_bytes());
        h = fnv_word(h, size as u64);
        h = fnv_word(h, align as u64);
        let mut i = 0;
        while i < offsets.len() {
            h = fnv_word(h, offsets[i] as u64);
            i += 1;
        }
        TypeSig {
            name: RStr::from_static(name),
            fields: RStr::from_static(fields),
            size,
            align,
            fingerprint: h,
            history: [h; MAX_MINOR],
        }
    }

    /// Builds a struct's signature, with its history by minor.
    pub const fn of_struct(
        name: &'static str,
        fields_text: &'static str,
        size: usize,
        align: usize,
        fields: &[FieldSig],
    ) -> TypeSig {
        let mut history = [0u64; MAX_MINOR];
        let mut k = 0;
        while k < MAX_MINOR {
            history[k] = struct_fingerprint(name, size, align, fields, k as u32);
            k += 1;
        }
        TypeSig {
            name: RStr::from_static(name),
            fields: RStr::from_static(fields_text),
            size,
            align,
            fingerprint: history[ABI_MINOR as usize],
            history,
        }
    }

    /// The fingerprint a module of `minor` has for this type.
    pub fn at_minor(&self, minor: u32) -> Option<u64> {
        self.history.get(minor as usize).copied()
    }
}

const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Hashes text without its white space, so that two compilers which print
/// the same declared type with different spacing agree.
const fn fnv_text(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b == b' ' || b == b'\n' || b == b'\t') {
            h ^= b as u64;
            h = h.wrapping_mul(FNV_PRIME);
        }
        i += 1;
    }
    h
}

const fn fnv_word(mut h: u64, w: u64) -> u64 {
    let bytes = w.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// A fingerprint of a type as it crosses the boundary: for a function
/// pointer, its whole signature (argument and return types, recursively),
/// so a callback declared through an alias changes its table's fingerprint
/// when the alias's signature does.
pub trait AbiHash {
    /// The fingerprint.
    const HASH: u64;
}

const fn mix(h: u64, w: u64) -> u64 {
    fnv_word(h, w)
}

const fn named(name: &str) -> u64 {
    fnv_text(0xcbf2_9ce4_8422_2325, name.as_bytes())
}

/// The [`AbiHash`] of a boundary type declared by `abi_struct!` or
/// `abi_consts!`: its name. Not for direct use.
#[doc(hidden)]
pub const fn name_hash(name: &str) -> u64 {
    named(name)
}

macro_rules! abi_hash_named {
    ($($t:ty),*) => {
        $( impl AbiHash for $t { const HASH: u64 = named(stringify!($t)); } )*
    };
}
abi_hash_named!(
    (),
    u8,
    u16,
    u32,
    u64,
    i32,
    i64,
    usize,
    c_void,
    core::sync::atomic::AtomicU32
);

impl<T: AbiHash> AbiHash for *const T {
    const HASH: u64 = mix(named("*const"), T::HASH);
}
impl<T: AbiHash> AbiHash for *mut T {
    const HASH: u64 = mix(named("*mut"), T::HASH);
}
impl<T: AbiHash> AbiHash for Option<T> {
    const HASH: u64 = mix(named("Option"), T::HASH);
}
impl<T: AbiHash, const N: usize> AbiHash for [T; N] {
    const HASH: u64 = mix(mix(named("array"), T::HASH), N as u64);
}

macro_rules! abi_hash_fn {
    ($($a:ident),*) => {
        impl<R: AbiHash $(, $a: AbiHash)*> AbiHash for unsafe extern "C" fn($($a),*) -> R {
            const HASH: u64 = {
                let h = mix(named("unsafe extern C fn"), R::HASH);
                $( let h = mix(h, $a::HASH); )*
                h
            };
        }
    };
}
abi_hash_fn!();
abi_hash_fn!(A);
abi_hash_fn!(A, B);
abi_hash_fn!(A, B, C);
abi_hash_fn!(A, B, C, D);
abi_hash_fn!(A, B, C, D, E);
abi_hash_fn!(A, B, C, D, E, F);
abi_hash_fn!(A, B, C, D, E, F, G);
abi_hash_fn!(A, B, C, D, E, F, G, H);

impl AbiHash for RStr {
    const HASH: u64 = named("RStr");
}

/// A type whose layout is part of the ABI.
pub trait AbiType {
    /// Its signature.
    const SIG: TypeSig;
}

impl AbiType for RStr {
    const SIG: TypeSig = TypeSig::new(
        "RStr",
        "ptr: *const u8; len: usize;",
        core::mem::size_of::<RStr>(),
        core::mem::align_of::<RStr>(),
        &[
            core::mem::offset_of!(RStr, ptr),
            core::mem::offset_of!(RStr, len),
        ],
    );
}

/// Declares a `#[repr(C)]` boundary struct and its [`AbiType`] signature.
#[doc(hidden)]
#[macro_export]
macro_rules! abi_struct {
    ($(#[$m:meta])* pub struct $name:ident {
        $( $(#[$fm:meta])* $([since $since:literal])? pub $f:ident : $t:ty ),* $(,)?
    }) => {
        $(#[$m])*
        #[repr(C)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }
        impl $crate::abi::AbiType for $name {
            const SIG: $crate::abi::TypeSig = $crate::abi::TypeSig::of_struct(
                stringify!($name),
                concat!($( stringify!($f), ": ", stringify!($t), "; " ),*),
                ::core::mem::size_of::<$name>(),
                ::core::mem::align_of::<$name>(),
                &[$( $crate::abi::FieldSig {
                    text: concat!(stringify!($f), ": ", stringify!($t)),
                    since: 0 $(+ $since)?,
                    hash: <$t as $crate::abi::AbiHash>::HASH,
                    offset: ::core::mem::offset_of!($name, $f),
                    size: ::core::mem::size_of::<$t>(),
                } ),*],
            );
        }
        // By name: the type's own layout is checked on its own (every
        // boundary type is in ABI_TYPES), and a name stays the same across
        // the minors that append to it.
        impl $crate::abi::AbiHash for $name {
            const HASH: u64 = $crate::abi::name_hash(stringify!($name));
        }
    };
}

/// Declares a transparent integer newtype with named constants: the
/// boundary's form of an enum, so that a value the receiver does not know is
/// data, never undefined behaviour.
#[doc(hidden)]
#[macro_export]
macro_rules! abi_consts {
    ($(#[$m:meta])* pub struct $name:ident($repr:ty) { $( $(#[$cm:meta])* $c:ident = $v:expr ),* $(,)? }) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);
        #[allow(missing_docs)]
        impl $name {
            $( $(#[$cm])* pub const $c: $name = $name($v); )*
            /// Every named value, in declaration order.
            pub const ALL: &'static [$name] = &[$( $name($v) ),*];
            /// The constant's name, if the value has one.
            pub const fn name(self) -> Option<&'static str> {
                $( if self.0 == $v { return Some(stringify!($c)); } )*
                None
            }
            /// The value whose name is `s` (ASCII case-insensitive).
            pub fn from_name(s: &str) -> Option<$name> {
                $( if s.eq_ignore_ascii_case(stringify!($c)) { return Some($name($v)); } )*
                None
            }
        }
        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
        impl $crate::abi::AbiType for $name {
            const SIG: $crate::abi::TypeSig = $crate::abi::TypeSig::new(
                stringify!($name),
                concat!(stringify!($repr), " { ", $( stringify!($c), " = ", stringify!($v), "; ", )* "}"),
                ::core::mem::size_of::<$name>(),
                ::core::mem::align_of::<$name>(),
                &[],
            );
        }
        // By name: the type's own layout is checked on its own (every
        // boundary type is in ABI_TYPES), and a name stays the same across
        // the minors that append to it.
        impl $crate::abi::AbiHash for $name {
            const HASH: u64 = $crate::abi::name_hash(stringify!($name));
        }
    };
}

/// The frozen header every module exports under [`MODULE_HEADER_SYMBOL`].
///
/// Fields are only ever appended after `descriptor`, and only with a new
/// [`HEADER_VERSION`]. A module writes it with `declare_module!`; nobody
/// fills it by hand.
#[repr(C)]
pub struct ModuleHeader {
    /// [`MODULE_MAGIC`].
    pub magic: [u8; 8],
    /// [`HEADER_VERSION`] of the crate the module was built with.
    pub header_version: u32,
    /// [`ABI_MAJOR`] of that crate.
    pub abi_major: u32,
    /// [`ABI_MINOR`] of that crate.
    pub abi_minor: u32,
    /// 1 when the module was built with `panic = "unwind"`.
    pub panic_unwind: u32,
    /// [`CRATE_VERSION`] of that crate.
    pub crate_version: RStr,
    /// The signatures of every boundary type, as that crate declares them.
    pub types: *const TypeSig,
    /// How many `types`.
    pub type_count: usize,
    /// The module's descriptor; read it only after the signatures match.
    pub descriptor: *const c_void,
}

// The header is immutable static data.
unsafe impl Sync for ModuleHeader {}

impl ModuleHeader {
    /// The header for a module whose descriptor is `descriptor`.
    pub const fn new(descriptor: &'static crate::module::ModuleDescriptor) -> ModuleHeader {
        ModuleHeader {
            magic: MODULE_MAGIC,
            header_version: HEADER_VERSION,
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            panic_unwind: cfg!(panic = "unwind") as u32,
            crate_version: RStr::from_static(CRATE_VERSION),
            types: ABI_TYPES.as_ptr(),
            type_count: header_type_count(),
            descriptor: descriptor as *const crate::module::ModuleDescriptor as *const c_void,
        }
    }
}

/// How many of [`ABI_TYPES`] a module of this crate's minor describes in
/// its header: the types added by later minors come last, so a build at an
/// older minor (the `test-abi-minor-*` features) leaves them out, exactly as
/// a module built against that minor does.
const fn header_type_count() -> usize {
    let mut n = ABI_TYPES.len();
    while n > 0 {
        let name = ABI_TYPES[n - 1].name;
        // SAFETY: the names are this crate's own static strings.
        let bytes = unsafe { core::slice::from_raw_parts(name.ptr, name.len) };
        let mut since = 0;
        let mut i = 0;
        while i < TYPES_SINCE.len() {
            if bytes_eq(TYPES_SINCE[i].0.as_bytes(), bytes) {
                since = TYPES_SINCE[i].1;
            }
            i += 1;
        }
        if since <= ABI_MINOR {
            break;
        }
        n -= 1;
    }
    n
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every type that crosses the boundary, with its signature (those a later
/// minor added last, in [`TYPES_SINCE`] order).
pub const ABI_TYPES: &[TypeSig] = {
    use crate::handover::*;
    use crate::host::*;
    use crate::interfaces::*;
    use crate::module::*;
    use crate::types::*;
    &[
        RStr::SIG,
        TypeSig::SIG_SELF,
        Status::SIG,
        LogLevel::SIG,
        InterfaceKind::SIG,
        CallCause::SIG,
        ChannelState::SIG,
        KillSignal::SIG,
        MessageId::SIG,
        ModuleHandle::SIG,
        SessionRef::SIG,
        KeyValue::SIG,
        OutStream::SIG,
        EventDesc::SIG,
        EventVisitor::SIG,
        CallerProfile::SIG,
        Frame::SIG,
        Dtmf::SIG,
        CoreMessage::SIG,
        ChatMessage::SIG,
        OutgoingRequest::SIG,
        IoRoutines::SIG,
        StateHandlers::SIG,
        EndpointInterface::SIG,
        ApplicationInterface::SIG,
        ApiInterface::SIG,
        ChatInterface::SIG,
        HostServices::SIG,
        ModuleDescriptor::SIG,
        HandoverSink::SIG,
        DeliveryDesc::SIG,
        HandoverTable::SIG,
    ]
};

impl TypeSig {
    const SIG_SELF: TypeSig = TypeSig::new(
        "TypeSig",
        "name: RStr; fields: RStr; size: usize; align: usize; fingerprint: u64; history: [u64; MAX_MINOR];",
        core::mem::size_of::<TypeSig>(),
        core::mem::align_of::<TypeSig>(),
        &[
            core::mem::offset_of!(TypeSig, name),
            core::mem::offset_of!(TypeSig, fields),
            core::mem::offset_of!(TypeSig, size),
            core::mem::offset_of!(TypeSig, align),
            core::mem::offset_of!(TypeSig, fingerprint),
            core::mem::offset_of!(TypeSig, history),
        ],
    );
}

/// Why a module's ABI does not match the host's.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbiMismatch {
    /// Not a hotswitch module (no magic).
    BadMagic,
    /// A header layout this host cannot read.
    HeaderVersion { module: u32, host: u32 },
    /// Built with `panic = "abort"`: a panic could not be contained.
    PanicAbort,
    /// Different breaking ABI version.
    Version {
        module_major: u32,
        module_crate: String,
        host_major: u32,
        host_crate: String,
    },
    /// A boundary type's layout differs.
    Layout {
        type_name: String,
        module: String,
        host: String,
    },
    /// A boundary type one side has and the other lacks.
    MissingType { type_name: String, in_module: bool },
    /// Built against a later minor of this major: the host lacks entries
    /// the module may call (`Type.entry`).
    NewerMinor {
        module_minor: u32,
        host_minor: u32,
        needs: Vec<String>,
    },
}

impl core::fmt::Display for AbiMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AbiMismatch::BadMagic => write!(f, "not a hotswitch module (bad header magic)"),
            AbiMismatch::HeaderVersion { module, host } => write!(
                f,
                "module header version {module}, host reads version {host}"
            ),
            AbiMismatch::PanicAbort => write!(
                f,
                "module was built with panic=\"abort\"; hotswitch needs panic=\"unwind\" to contain its panics"
            ),
            AbiMismatch::Version {
                module_major,
                module_crate,
                host_major,
                host_crate,
            } => write!(
                f,
                "plugin-api version mismatch: module built against plugin-api {module_crate} (ABI {module_major}), host has plugin-api {host_crate} (ABI {host_major})"
            ),
            AbiMismatch::Layout {
                type_name,
                module,
                host,
            } => write!(
                f,
                "plugin-api layout mismatch in type `{type_name}`: module has {module}; host has {host}"
            ),
            AbiMismatch::NewerMinor {
                module_minor,
                host_minor,
                needs,
            } => write!(
                f,
                "module built against plugin-api ABI {ABI_MAJOR}.{module_minor} needs {}, which this host (ABI {ABI_MAJOR}.{host_minor}) lacks",
                needs.join(", ")
            ),
            AbiMismatch::MissingType {
                type_name,
                in_module,
            } => {
                if *in_module {
                    write!(f, "plugin-api layout mismatch: module has type `{type_name}` that the host lacks")
                } else {
                    write!(f, "plugin-api layout mismatch: module lacks type `{type_name}`")
                }
            }
        }
    }
}

impl std::error::Error for AbiMismatch {}

fn describe(sig: &TypeSig) -> String {
    // SAFETY: the caller holds the library the signature lives in.
    let fields = unsafe { sig.fields.to_str() };
    format!(
        "size {} align {} {{ {} }}",
        sig.size,
        sig.align,
        fields.trim()
    )
}

/// The field names of `theirs` that `mine` does not have.
///
/// # Safety
/// As [`describe`].
unsafe fn added_fields<'a>(
    theirs: &'a TypeSig,
    mine: &TypeSig,
) -> impl Iterator<Item = String> + 'a {
    let names = |sig: &TypeSig| -> Vec<String> {
        sig.fields
            .to_str()
            .split(';')
            .filter_map(|f| f.split(':').next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let known = names(mine);
    names(theirs)
        .into_iter()
        .filter(move |n| !known.contains(n))
}

/// Checks a module header against this crate's own ABI.
///
/// # Safety
/// `header` must point to a readable header inside a library that stays
/// loaded for the duration of the call.
pub unsafe fn check_header(header: *const ModuleHeader) -> Result<(), AbiMismatch> {
    let h = &*header;
    if h.magic != MODULE_MAGIC {
        return Err(AbiMismatch::BadMagic);
    }
    if h.header_version != HEADER_VERSION {
        return Err(AbiMismatch::HeaderVersion {
            module: h.header_version,
            host: HEADER_VERSION,
        });
    }
    if h.abi_major != ABI_MAJOR {
        return Err(AbiMismatch::Version {
            module_major: h.abi_major,
            module_crate: h.crate_version.to_str().into_owned(),
            host_major: ABI_MAJOR,
            host_crate: CRATE_VERSION.to_string(),
        });
    }
    if h.panic_unwind != 1 {
        return Err(AbiMismatch::PanicAbort);
    }
    let theirs: &[TypeSig] = if h.types.is_null() {
        &[]
    } else {
        core::slice::from_raw_parts(h.types, h.type_count)
    };
    // Both sides compare the types as they were at the older of the two
    // minors; a newer module must in addition not need what came later.
    let minor = h.abi_minor.min(ABI_MINOR);
    let mut needs = Vec::new();
    for mine in ABI_TYPES {
        let my_name = mine.name.to_str();
        match theirs.iter().find(|t| t.name.to_str() == my_name) {
            // A type a later minor added, which a module of its minor does
            // not know: nothing of it crosses (the host reads the field
            // that points to it only from a module of that minor).
            None if h.abi_minor < type_since(&my_name) => {}
            None => {
                return Err(AbiMismatch::MissingType {
                    type_name: my_name.into_owned(),
                    in_module: false,
                })
            }
            Some(t) if t.at_minor(minor) != mine.at_minor(minor) => {
                return Err(AbiMismatch::Layout {
                    type_name: my_name.into_owned(),
                    module: describe(t),
                    host: describe(mine),
                })
            }
            Some(t) if h.abi_minor > ABI_MINOR && t.fingerprint != mine.fingerprint => {
                needs.extend(added_fields(t, mine).map(|f| format!("{my_name}.{f}")));
            }
            Some(_) => {}
        }
    }
    if h.abi_minor > ABI_MINOR {
        return Err(AbiMismatch::NewerMinor {
            module_minor: h.abi_minor,
            host_minor: ABI_MINOR,
            needs,
        });
    }
    for t in theirs {
        let name = t.name.to_str();
        if !ABI_TYPES.iter().any(|m| m.name.to_str() == name) {
            return Err(AbiMismatch::MissingType {
                type_name: name.into_owned(),
                in_module: true,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_from_this_crate_passes_its_own_check() {
        static H: ModuleHeader = ModuleHeader::new(&crate::module::tests::TEST_DESCRIPTOR);
        unsafe { check_header(&H) }.unwrap();
    }

    crate::abi_struct! {
        /// A table as it was at minor 0.
        pub struct Old {
            pub a: unsafe extern "C" fn(x: u32) -> u32,
        }
    }
    crate::abi_struct! {
        /// The same table with an entry appended at minor 1.
        pub struct New {
            pub a: unsafe extern "C" fn(x: u32) -> u32,
            [since 1]
            pub b: unsafe extern "C" fn() -> u32,
        }
    }
    crate::abi_struct! {
        /// The same table with `a`'s signature changed.
        pub struct Changed {
            pub a: unsafe extern "C" fn(x: u64) -> u32,
        }
    }
    type Alias = unsafe extern "C" fn(x: u32) -> u32;
    type AliasChanged = unsafe extern "C" fn(x: u32, y: u32) -> u32;
    crate::abi_struct! {
        /// Declared through an alias.
        pub struct ViaAlias {
            pub a: Option<Alias>,
        }
    }
    crate::abi_struct! {
        /// The alias's signature changed, the declared text did not.
        pub struct ViaAliasChanged {
            pub a: Option<AliasChanged>,
        }
    }

    #[test]
    fn an_appended_entry_keeps_the_older_minors_fingerprint() {
        let old = <Old as AbiType>::SIG;
        let new = <New as AbiType>::SIG;
        // One type, without and with the appended entry (what two builds
        // of the same table at minors 0 and 1 describe).
        let f = |since_b: Option<u32>| {
            let mut v = vec![FieldSig {
                text: "a: unsafe extern \"C\" fn(x: u32) -> u32",
                since: 0,
                hash: <Alias as AbiHash>::HASH,
                offset: 0,
                size: 8,
            }];
            if let Some(s) = since_b {
                v.push(FieldSig {
                    text: "b: unsafe extern \"C\" fn() -> u32",
                    since: s,
                    hash: <unsafe extern "C" fn() -> u32 as AbiHash>::HASH,
                    offset: 8,
                    size: 8,
                });
            }
            let size = 8 * v.len();
            TypeSig::of_struct("T", "", size, 8, &v)
        };
        let (t_old, t_new) = (f(None), f(Some(1)));
        assert_eq!(t_new.at_minor(0), t_old.at_minor(0));
        assert_ne!(t_new.at_minor(1), t_old.at_minor(1));
        assert_ne!(new.history[0], new.history[1]);
        assert_eq!(old.history[0], old.history[1]);
    }

    #[test]
    fn a_changed_signature_behind_an_alias_changes_the_fingerprint() {
        let a = <ViaAlias as AbiType>::SIG;
        let b = <ViaAliasChanged as AbiType>::SIG;
        // Same name text for the field's declared type family, different
        // signature: the type hashes differ, so do the fingerprints.
        assert_ne!(
            <Option<Alias> as AbiHash>::HASH,
            <Option<AliasChanged> as AbiHash>::HASH
        );
        assert_ne!(
            <Old as AbiType>::SIG.history[0],
            <Changed as AbiType>::SIG.history[0]
        );
        assert_ne!(a.history[0], b.history[0]);
    }

    #[test]
    fn a_module_of_a_newer_minor_is_refused_naming_the_entries_it_needs() {
        static NEWER: ModuleHeader = {
            let mut h = ModuleHeader::new(&crate::module::tests::TEST_DESCRIPTOR);
            h.abi_minor = ABI_MINOR + 1;
            h
        };
        // Its types are this crate's: as if the next minor appended nothing
        // to them, it still needs a newer host.
        let e = unsafe { check_header(&NEWER) }.unwrap_err();
        assert!(
            matches!(e, AbiMismatch::NewerMinor { module_minor, host_minor, .. }
                if module_minor == ABI_MINOR + 1 && host_minor == ABI_MINOR),
            "{e}"
        );
        let names = unsafe { added_fields(&<New as AbiType>::SIG, &<Old as AbiType>::SIG) }
            .collect::<Vec<_>>();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn a_changed_field_type_changes_the_fingerprint() {
        let a = TypeSig::new("T", "a: u32;", 4, 4, &[0]);
        let b = TypeSig::new("T", "a: i32;", 4, 4, &[0]);
        let c = TypeSig::new("T", "a :  u32 ;", 4, 4, &[0]);
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint, c.fingerprint, "spacing must not matter");
    }

    #[test]
    fn a_wrong_major_is_named_with_both_versions() {
        static mut H: ModuleHeader = ModuleHeader::new(&crate::module::tests::TEST_DESCRIPTOR);
        unsafe {
            let h = &mut *core::ptr::addr_of_mut!(H);
            h.abi_major = ABI_MAJOR + 1;
            let e = check_header(h).unwrap_err().to_string();
            assert!(e.contains("plugin-api version mismatch"), "{e}");
            assert!(e.contains(&format!("ABI {}", ABI_MAJOR + 1)), "{e}");
        }
    }
}
