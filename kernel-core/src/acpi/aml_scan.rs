//! A bounded reader of the AML namespace's static shape, without an AML
//! interpreter: which devices the DSDT and SSDTs declare, and the named
//! constants (`Name(_HID, ...)`, `Name(_CRS, ResourceTemplate() {...})`)
//! they hold, each under its absolute path.
//!
//! No AML interpreter builds on stable Rust, and finding the PCI host
//! bridge's resources does not need one: firmware declares devices and
//! their identification objects as definitions at namespace level (ACPI
//! 6.5, 20.2.5), which can be walked structurally because every object that
//! holds others carries its length (a `PkgLength`, 20.2.4). The walk:
//!
//! * follows `Scope`, `Device` (their names resolved against the enclosing
//!   scope: `\` root, `^` parent prefixes, dual and multi-segment names);
//! * records `Name(NAME, constant)` for integers, strings and buffers;
//!   packages are skipped;
//! * records `Method` bodies (for a `_CRS` method that only returns a
//!   constant buffer, see [`Namespace::static_buffer`]);
//! * skips by their length `Field`, `IndexField`, `BankField`,
//!   `PowerResource`, `ThermalZone`, `Processor`, `If`, `Else`, `While`
//!   (conditional definitions are not evaluated, so never guessed at), and
//!   steps over `OperationRegion` (constant offsets), `Mutex`, `Event`,
//!   `Alias`, `External`;
//! * stops at anything else: the rest of that one scope is not read (noted
//!   in [`Namespace::stopped`]), and the walk goes on after the scope's end,
//!   which its length gives.
//!
//! Every read is bounded by the table, the nesting by [`MAX_DEPTH`], and the
//! walk only moves forward, so hostile AML ends in time linear in its size
//! with a note, never a panic or a loop.

use alloc::vec::Vec;
use core::fmt;

/// Deepest nesting of scopes and devices followed.
pub const MAX_DEPTH: usize = 32;
/// Most name segments in a path.
pub const MAX_PATH_SEGMENTS: usize = 32;
/// Most objects recorded over all tables (a bound on memory use).
pub const MAX_OBJECTS: usize = 16_384;

const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ALIAS_OP: u8 = 0x06;
const NAME_OP: u8 = 0x08;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
const QWORD_PREFIX: u8 = 0x0e;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const VAR_PACKAGE_OP: u8 = 0x13;
const METHOD_OP: u8 = 0x14;
const EXTERNAL_OP: u8 = 0x15;
const DUAL_NAME_PREFIX: u8 = 0x2e;
const MULTI_NAME_PREFIX: u8 = 0x2f;
const EXT_OP_PREFIX: u8 = 0x5b;
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX: u8 = b'^';
const RETURN_OP: u8 = 0xa4;
const IF_OP: u8 = 0xa0;
const ELSE_OP: u8 = 0xa1;
const WHILE_OP: u8 = 0xa2;
const ONES_OP: u8 = 0xff;
// After EXT_OP_PREFIX:
const MUTEX_OP: u8 = 0x01;
const EVENT_OP: u8 = 0x02;
const REVISION_OP: u8 = 0x30;
const OP_REGION_OP: u8 = 0x80;
const FIELD_OP: u8 = 0x81;
const DEVICE_OP: u8 = 0x82;
const PROCESSOR_OP: u8 = 0x83;
const POWER_RES_OP: u8 = 0x84;
const THERMAL_ZONE_OP: u8 = 0x85;
const INDEX_FIELD_OP: u8 = 0x86;
const BANK_FIELD_OP: u8 = 0x87;

/// One name segment (four characters, `_`-padded).
pub type NameSeg = [u8; 4];

/// An absolute path in the namespace, root first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmlPath(pub Vec<NameSeg>);

impl AmlPath {
    /// The path of `name` inside this one.
    pub fn child(&self, name: &NameSeg) -> AmlPath {
        let mut segs = self.0.clone();
        segs.push(*name);
        AmlPath(segs)
    }

    /// Whether this is `parent` plus one segment `name`.
    fn is_child_of(&self, parent: &AmlPath, name: &NameSeg) -> bool {
        self.0.len() == parent.0.len() + 1
            && self.0[..parent.0.len()] == parent.0[..]
            && self.0.last() == Some(name)
    }
}

impl fmt::Display for AmlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\\")?;
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            // Segments were checked to be A-Z, 0-9, _ when read.
            let text = core::str::from_utf8(seg).unwrap_or("????");
            f.write_str(text.trim_end_matches('_'))?;
        }
        Ok(())
    }
}

/// What a recorded name holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmlValue<'a> {
    /// An integer constant.
    Integer(u64),
    /// A string constant (without its NUL).
    String(&'a [u8]),
    /// A buffer's initializer bytes (at most its declared size).
    Buffer(&'a [u8]),
    /// A package: its elements (after the element count), not decoded
    /// (see [`package_constants`]).
    Package(&'a [u8]),
    /// A method: its body, not run.
    Method(&'a [u8]),
}

/// A recorded definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmlObject<'a> {
    /// Where it is.
    pub path: AmlPath,
    /// What it holds.
    pub value: AmlValue<'a>,
}

/// Where and why the walk of one scope stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Which table (0: the first one scanned).
    pub table: usize,
    /// Offset in that table's AML (after the header).
    pub offset: usize,
    /// Why.
    pub reason: StopReason,
}

/// Why the walk of a scope stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An opcode this reader does not step over (first byte).
    UnknownOpcode(u8),
    /// An object runs past the end of its scope or table.
    Truncated,
    /// A name is malformed (a bad character, too many `^`).
    BadName,
    /// Scopes nest deeper than [`MAX_DEPTH`], or a path is longer than
    /// [`MAX_PATH_SEGMENTS`].
    TooDeep,
    /// More than [`MAX_OBJECTS`] objects.
    TooManyObjects,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOpcode(op) => write!(f, "opcode {op:#04x} not stepped over"),
            Self::Truncated => f.write_str("an object runs past its scope"),
            Self::BadName => f.write_str("a malformed name"),
            Self::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} scopes"),
            Self::TooManyObjects => write!(f, "more than {MAX_OBJECTS} objects"),
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {} offset {:#x}: {}",
            self.table, self.offset, self.reason
        )
    }
}

/// What the walk found in every table scanned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace<'a> {
    /// Every `Device`, in the order found.
    pub devices: Vec<AmlPath>,
    /// Every `Name` and `Method` definition, in the order found.
    pub objects: Vec<AmlObject<'a>>,
    /// Scopes whose walk stopped early.
    pub stopped: Vec<Stop>,
    tables: usize,
}

impl<'a> Namespace<'a> {
    /// An empty namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the definitions of one AML table body (a DSDT or SSDT after its
    /// 36-byte header). Tables are scanned in the order given; names are
    /// absolute, so an SSDT's `Scope(\_SB.PCI0)` adds to the DSDT's device.
    pub fn scan(&mut self, aml: &'a [u8]) {
        let table = self.tables;
        self.tables += 1;
        let mut walker = Walker {
            aml,
            table,
            ns: self,
        };
        walker.term_list(0, aml.len(), &AmlPath::default(), 0);
    }

    /// The first definition of `name` directly inside `scope`.
    pub fn get(&self, scope: &AmlPath, name: &NameSeg) -> Option<AmlValue<'a>> {
        self.objects
            .iter()
            .find(|o| o.path.is_child_of(scope, name))
            .map(|o| o.value)
    }

    /// The buffer `name` in `scope` holds, either as a `Name` or as a method
    /// whose body is exactly `Return(Buffer(){...})` or
    /// `Name(X, Buffer(){...}) Return(X)`: the shapes firmware uses for a
    /// constant `_CRS`. `Err` says why nothing constant can be read.
    pub fn static_buffer(&self, scope: &AmlPath, name: &NameSeg) -> Result<&'a [u8], NotStatic> {
        match self.get(scope, name) {
            None => Err(NotStatic::Missing),
            Some(AmlValue::Buffer(bytes)) => Ok(bytes),
            Some(AmlValue::Method(body)) => method_buffer(body).ok_or(NotStatic::ComputedByMethod),
            Some(_) => Err(NotStatic::NotABuffer),
        }
    }
}

/// The leading integer and string constants of a package's elements (as
/// in `Name(_CID, Package() {EisaId("PNP0A08"), "PNP0A03"})`), up to the
/// first element of another kind.
pub fn package_constants<'a>(elements: &'a [u8]) -> impl Iterator<Item = AmlValue<'a>> + 'a {
    let body = elements;
    let mut at = 0;
    core::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        match body[at] {
            STRING_PREFIX | ZERO_OP | ONE_OP | ONES_OP | BYTE_PREFIX | WORD_PREFIX
            | DWORD_PREFIX | QWORD_PREFIX => {
                let (value, next) = data_object(body, at, body.len()).ok()?;
                at = next;
                Some(value)
            }
            _ => None,
        }
    })
}

/// Why a name gives no constant buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStatic {
    /// The name is not defined there.
    Missing,
    /// It holds something else than a buffer.
    NotABuffer,
    /// A method that does more than return a constant buffer (it would need
    /// an AML interpreter).
    ComputedByMethod,
}

impl fmt::Display for NotStatic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("not defined"),
            Self::NotABuffer => f.write_str("not a buffer"),
            Self::ComputedByMethod => {
                f.write_str("a method that computes it (needs an AML interpreter)")
            }
        }
    }
}

/// The constant buffer a method body returns, for the two shapes
/// [`Namespace::static_buffer`] accepts.
fn method_buffer(body: &[u8]) -> Option<&[u8]> {
    match *body.first()? {
        RETURN_OP => {
            let (bytes, next) = buffer(body, 1, body.len()).ok()?;
            (next == body.len()).then_some(bytes)
        }
        NAME_OP => {
            let (name, next) = name_string(body, 1, body.len()).ok()?;
            if body.get(next) != Some(&BUFFER_OP) {
                return None;
            }
            let (bytes, next) = buffer(body, next, body.len()).ok()?;
            if body.get(next) != Some(&RETURN_OP) {
                return None;
            }
            let (returned, end) = name_string(body, next + 1, body.len()).ok()?;
            (end == body.len() && returned == name && !name.segs.is_empty()).then_some(bytes)
        }
        _ => None,
    }
}

/// A parsed NameString (ACPI 6.5, 20.2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Name {
    root: bool,
    parents: usize,
    segs: Vec<NameSeg>,
}

impl Name {
    /// The absolute path of this name used in `scope`.
    fn resolve(&self, scope: &AmlPath) -> Result<AmlPath, StopReason> {
        let mut segs = if self.root {
            Vec::new()
        } else {
            let keep = scope
                .0
                .len()
                .checked_sub(self.parents)
                .ok_or(StopReason::BadName)?;
            scope.0[..keep].to_vec()
        };
        if segs.len() + self.segs.len() > MAX_PATH_SEGMENTS {
            return Err(StopReason::TooDeep);
        }
        segs.extend_from_slice(&self.segs);
        Ok(AmlPath(segs))
    }
}

fn name_seg(aml: &[u8], at: usize, end: usize) -> Result<NameSeg, StopReason> {
    let bytes = aml
        .get(at..at.checked_add(4).ok_or(StopReason::Truncated)?)
        .filter(|_| at + 4 <= end)
        .ok_or(StopReason::Truncated)?;
    let lead_ok = bytes[0].is_ascii_uppercase() || bytes[0] == b'_';
    let rest_ok = bytes[1..]
        .iter()
        .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    if !(lead_ok && rest_ok) {
        return Err(StopReason::BadName);
    }
    Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Reads a NameString at `at`; returns it and the offset after it.
fn name_string(aml: &[u8], mut at: usize, end: usize) -> Result<(Name, usize), StopReason> {
    let byte = |i: usize| {
        if i < end {
            aml.get(i).copied().ok_or(StopReason::Truncated)
        } else {
            Err(StopReason::Truncated)
        }
    };
    let mut name = Name {
        root: false,
        parents: 0,
        segs: Vec::new(),
    };
    if byte(at)? == ROOT_CHAR {
        name.root = true;
        at += 1;
    } else {
        while byte(at)? == PARENT_PREFIX {
            name.parents += 1;
            if name.parents > MAX_PATH_SEGMENTS {
                return Err(StopReason::BadName);
            }
            at += 1;
        }
    }
    let count = match byte(at)? {
        ZERO_OP => {
            at += 1;
            0
        }
        DUAL_NAME_PREFIX => {
            at += 1;
            2
        }
        MULTI_NAME_PREFIX => {
            let count = usize::from(byte(at + 1)?);
            at += 2;
            count
        }
        _ => 1,
    };
    if count > MAX_PATH_SEGMENTS {
        return Err(StopReason::TooDeep);
    }
    for _ in 0..count {
        name.segs.push(name_seg(aml, at, end)?);
        at += 4;
    }
    Ok((name, at))
}

/// Decodes a PkgLength at `at` (ACPI 6.5, 20.2.4). Returns the offset after
/// the length bytes and the end of the object (the length counts itself),
/// which must not pass `end`.
pub fn pkg_length(aml: &[u8], at: usize, end: usize) -> Result<(usize, usize), StopReason> {
    let lead = *aml
        .get(at)
        .filter(|_| at < end)
        .ok_or(StopReason::Truncated)?;
    let extra = usize::from(lead >> 6);
    let mut value = if extra == 0 {
        usize::from(lead & 0x3f)
    } else {
        usize::from(lead & 0x0f)
    };
    for i in 0..extra {
        let byte = *aml
            .get(at + 1 + i)
            .filter(|_| at + 1 + i < end)
            .ok_or(StopReason::Truncated)?;
        value |= usize::from(byte) << (4 + 8 * i);
    }
    let body = at + 1 + extra;
    let object_end = at.checked_add(value).ok_or(StopReason::Truncated)?;
    if value < 1 + extra || object_end > end {
        return Err(StopReason::Truncated);
    }
    Ok((body, object_end))
}

/// Reads an integer constant at `at` (ZeroOp, OneOp, OnesOp, Byte/Word/
/// DWord/QWord prefixes, Revision); returns it and the offset after it.
fn integer(aml: &[u8], at: usize, end: usize) -> Result<(u64, usize), StopReason> {
    let op = *aml
        .get(at)
        .filter(|_| at < end)
        .ok_or(StopReason::Truncated)?;
    let width = match op {
        ZERO_OP => return Ok((0, at + 1)),
        ONE_OP => return Ok((1, at + 1)),
        ONES_OP => return Ok((u64::MAX, at + 1)),
        EXT_OP_PREFIX if aml.get(at + 1) == Some(&REVISION_OP) && at + 2 <= end => {
            return Ok((0, at + 2));
        }
        BYTE_PREFIX => 1,
        WORD_PREFIX => 2,
        DWORD_PREFIX => 4,
        QWORD_PREFIX => 8,
        other => return Err(StopReason::UnknownOpcode(other)),
    };
    let start = at + 1;
    if start + width > end {
        return Err(StopReason::Truncated);
    }
    let bytes = aml.get(start..start + width).ok_or(StopReason::Truncated)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b));
    Ok((value, start + width))
}

/// Reads `Buffer(size){bytes}` at `at` (BufferOp first); returns the
/// initializer bytes (cut to the declared size) and the offset after it.
fn buffer(aml: &[u8], at: usize, end: usize) -> Result<(&[u8], usize), StopReason> {
    if aml.get(at) != Some(&BUFFER_OP) || at >= end {
        return Err(StopReason::UnknownOpcode(aml.get(at).copied().unwrap_or(0)));
    }
    let (body, object_end) = pkg_length(aml, at + 1, end)?;
    let (size, data) = integer(aml, body, object_end)?;
    let available = object_end - data;
    let take = usize::try_from(size).map_or(available, |s| s.min(available));
    Ok((&aml[data..data + take], object_end))
}

/// Reads a `Name`'s data object at `at`; returns it and the offset after it.
fn data_object(aml: &[u8], at: usize, end: usize) -> Result<(AmlValue<'_>, usize), StopReason> {
    let op = *aml
        .get(at)
        .filter(|_| at < end)
        .ok_or(StopReason::Truncated)?;
    match op {
        STRING_PREFIX => {
            let rest = aml.get(at + 1..end).ok_or(StopReason::Truncated)?;
            let len = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(StopReason::Truncated)?;
            Ok((AmlValue::String(&rest[..len]), at + 1 + len + 1))
        }
        BUFFER_OP => {
            let (bytes, next) = buffer(aml, at, end)?;
            Ok((AmlValue::Buffer(bytes), next))
        }
        PACKAGE_OP | VAR_PACKAGE_OP => {
            let (body, object_end) = pkg_length(aml, at + 1, end)?;
            // NumElements: a byte (Package), a term (VarPackage: read as an
            // integer constant; anything else leaves no elements to read).
            let elements = if op == PACKAGE_OP {
                (body + 1).min(object_end)
            } else {
                integer(aml, body, object_end).map_or(object_end, |(_, next)| next)
            };
            Ok((AmlValue::Package(&aml[elements..object_end]), object_end))
        }
        _ => {
            let (value, next) = integer(aml, at, end)?;
            Ok((AmlValue::Integer(value), next))
        }
    }
}

struct Walker<'a, 'n> {
    aml: &'a [u8],
    table: usize,
    ns: &'n mut Namespace<'a>,
}

impl<'a> Walker<'a, '_> {
    fn stop(&mut self, offset: usize, reason: StopReason) {
        self.ns.stopped.push(Stop {
            table: self.table,
            offset,
            reason,
        });
    }

    fn record(&mut self, path: AmlPath, value: AmlValue<'a>) -> Result<(), StopReason> {
        if self.ns.objects.len() >= MAX_OBJECTS {
            return Err(StopReason::TooManyObjects);
        }
        self.ns.objects.push(AmlObject { path, value });
        Ok(())
    }

    /// Walks the term list `start..end` in `scope`; stops at the first term
    /// it cannot step over, noting where.
    fn term_list(&mut self, start: usize, end: usize, scope: &AmlPath, depth: usize) {
        let mut at = start;
        while at < end {
            match self.term(at, end, scope, depth) {
                Ok(next) => at = next,
                Err(reason) => {
                    self.stop(at, reason);
                    return;
                }
            }
        }
    }

    /// Steps over one term at `at`, recursing into scopes; returns the
    /// offset after it.
    fn term(
        &mut self,
        at: usize,
        end: usize,
        scope: &AmlPath,
        depth: usize,
    ) -> Result<usize, StopReason> {
        let aml = self.aml;
        let op = aml[at];
        match op {
            SCOPE_OP => self.scope(at + 1, end, scope, depth, false),
            NAME_OP => {
                let (name, next) = name_string(aml, at + 1, end)?;
                let (value, next) = data_object(aml, next, end)?;
                let path = name.resolve(scope)?;
                self.record(path, value)?;
                Ok(next)
            }
            METHOD_OP => {
                let (body, object_end) = pkg_length(aml, at + 1, end)?;
                let (name, next) = name_string(aml, body, object_end)?;
                // MethodFlags, then the body.
                if next >= object_end {
                    return Err(StopReason::Truncated);
                }
                let path = name.resolve(scope)?;
                self.record(path, AmlValue::Method(&aml[next + 1..object_end]))?;
                Ok(object_end)
            }
            IF_OP | ELSE_OP | WHILE_OP => Ok(pkg_length(aml, at + 1, end)?.1),
            ALIAS_OP => {
                let (_, next) = name_string(aml, at + 1, end)?;
                Ok(name_string(aml, next, end)?.1)
            }
            EXTERNAL_OP => {
                let (_, next) = name_string(aml, at + 1, end)?;
                // ObjectType, ArgumentCount.
                if next + 2 > end {
                    return Err(StopReason::Truncated);
                }
                Ok(next + 2)
            }
            EXT_OP_PREFIX => {
                let ext = *aml
                    .get(at + 1)
                    .filter(|_| at + 1 < end)
                    .ok_or(StopReason::Truncated)?;
                match ext {
                    DEVICE_OP => self.scope(at + 2, end, scope, depth, true),
                    FIELD_OP | INDEX_FIELD_OP | BANK_FIELD_OP | PROCESSOR_OP | POWER_RES_OP
                    | THERMAL_ZONE_OP => Ok(pkg_length(aml, at + 2, end)?.1),
                    OP_REGION_OP => {
                        let (_, next) = name_string(aml, at + 2, end)?;
                        // RegionSpace, then offset and length as constants.
                        if next >= end {
                            return Err(StopReason::Truncated);
                        }
                        let (_, next) = integer(aml, next + 1, end)?;
                        Ok(integer(aml, next, end)?.1)
                    }
                    MUTEX_OP => {
                        let (_, next) = name_string(aml, at + 2, end)?;
                        if next >= end {
                            return Err(StopReason::Truncated);
                        }
                        Ok(next + 1)
                    }
                    EVENT_OP => Ok(name_string(aml, at + 2, end)?.1),
                    _ => Err(StopReason::UnknownOpcode(EXT_OP_PREFIX)),
                }
            }
            other => Err(StopReason::UnknownOpcode(other)),
        }
    }

    /// A `Scope` or `Device` whose PkgLength is at `at`: walks its body
    /// with the scope it names; returns the offset after it.
    fn scope(
        &mut self,
        at: usize,
        end: usize,
        scope: &AmlPath,
        depth: usize,
        is_device: bool,
    ) -> Result<usize, StopReason> {
        let aml = self.aml;
        let (body, object_end) = pkg_length(aml, at, end)?;
        let (name, next) = name_string(aml, body, object_end)?;
        let path = name.resolve(scope)?;
        if depth + 1 > MAX_DEPTH {
            return Err(StopReason::TooDeep);
        }
        if is_device {
            if self.ns.objects.len() + self.ns.devices.len() >= MAX_OBJECTS {
                return Err(StopReason::TooManyObjects);
            }
            self.ns.devices.push(path.clone());
        }
        self.term_list(next, object_end, &path, depth + 1);
        Ok(object_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn path(segs: &[&[u8; 4]]) -> AmlPath {
        AmlPath(segs.iter().map(|s| **s).collect())
    }

    /// `Scope(\_SB) { Device(PCI0) { Name(_HID, EisaId("PNP0A08")) } }`
    /// followed by `Scope(\_SB.PCI0) { Name(_CRS, Buffer(2){0x79, 0}) }`.
    fn split_definition() -> Vec<u8> {
        let hid = [0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08];
        let mut device = vec![0x5b, 0x82, 0, b'P', b'C', b'I', b'0'];
        device.extend_from_slice(&hid);
        device[2] = (device.len() - 2) as u8;
        let mut sb = vec![0x10, 0, b'\\', b'_', b'S', b'B', b'_'];
        sb.extend_from_slice(&device);
        sb[1] = (sb.len() - 1) as u8;
        let crs = [
            0x08, b'_', b'C', b'R', b'S', 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00,
        ];
        let mut pci = vec![
            0x10, 0, b'\\', 0x2e, b'_', b'S', b'B', b'_', b'P', b'C', b'I', b'0',
        ];
        pci.extend_from_slice(&crs);
        pci[1] = (pci.len() - 1) as u8;
        sb.extend_from_slice(&pci);
        sb
    }

    #[test]
    fn names_are_resolved_across_scopes() {
        let aml = split_definition();
        let mut ns = Namespace::new();
        ns.scan(&aml);
        assert!(ns.stopped.is_empty(), "{:?}", ns.stopped);
        let pci0 = path(&[b"_SB_", b"PCI0"]);
        assert_eq!(ns.devices, core::slice::from_ref(&pci0));
        assert_eq!(ns.get(&pci0, b"_HID"), Some(AmlValue::Integer(0x080a_d041)));
        assert_eq!(ns.static_buffer(&pci0, b"_CRS"), Ok(&[0x79, 0x00][..]));
        assert_eq!(ns.static_buffer(&pci0, b"_PRS"), Err(NotStatic::Missing));
        assert_eq!(alloc::format!("{pci0}"), "\\_SB.PCI0");
    }

    #[test]
    fn package_elements_are_read_up_to_the_first_non_constant() {
        // Name(_CID, Package(3) { EisaId("PNP0A08"), "PNP0A03", Local0 })
        let aml = [
            0x08, b'_', b'C', b'I', b'D', 0x12, 0x11, 0x03, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0d,
            b'P', b'N', b'P', b'0', b'A', b'0', b'3', 0x00, 0x60,
        ];
        let mut ns = Namespace::new();
        ns.scan(&aml);
        let Some(AmlValue::Package(elements)) = ns.get(&AmlPath::default(), b"_CID") else {
            panic!("no package: {:?}", ns.objects);
        };
        let items: Vec<_> = package_constants(elements).collect();
        assert_eq!(
            items,
            [AmlValue::Integer(0x080a_d041), AmlValue::String(b"PNP0A03")]
        );
        assert_eq!(package_constants(&[]).count(), 0);
        assert_eq!(package_constants(&[0x0d, b'A']).count(), 0);
    }

    #[test]
    fn parent_prefixes_and_their_limits() {
        let scope = path(&[b"_SB_", b"PCI0"]);
        let (name, next) = name_string(b"^^ABCD", 0, 6).unwrap();
        assert_eq!(next, 6);
        assert_eq!(name.resolve(&scope).unwrap(), path(&[b"ABCD"]));
        let (name, _) = name_string(b"^^^ABCD", 0, 7).unwrap();
        assert_eq!(name.resolve(&scope), Err(StopReason::BadName));
        assert_eq!(name_string(b"abcd", 0, 4).unwrap_err(), StopReason::BadName);
        assert_eq!(
            name_string(b"\\/\x03ABCDEFGH", 0, 11).unwrap_err(),
            StopReason::Truncated
        );
    }

    #[test]
    fn constant_crs_methods_are_read_and_others_refused() {
        let pci0 = path(&[b"PCI0"]);
        // Method(_CRS) { Return(Buffer(2){0x79, 0}) }
        let ret = [
            0x14, 0x0d, b'_', b'C', b'R', b'S', 0x00, 0xa4, 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00,
        ];
        let mut aml = vec![0x5b, 0x82, 0, b'P', b'C', b'I', b'0'];
        aml.extend_from_slice(&ret);
        aml[2] = (aml.len() - 2) as u8;
        let mut ns = Namespace::new();
        ns.scan(&aml);
        assert_eq!(ns.static_buffer(&pci0, b"_CRS"), Ok(&[0x79, 0x00][..]));
        // Method(_CRS) { Name(RBUF, Buffer(2){0x79, 0}) Return(RBUF) }
        let named = [
            0x14, 0x16, b'_', b'C', b'R', b'S', 0x08, 0x08, b'R', b'B', b'U', b'F', 0x11, 0x05,
            0x0a, 0x02, 0x79, 0x00, 0xa4, b'R', b'B', b'U', b'F',
        ];
        let mut ns = Namespace::new();
        ns.scan(&named);
        assert_eq!(
            ns.static_buffer(&AmlPath::default(), b"_CRS"),
            Ok(&[0x79, 0x00][..])
        );
        // The same, but the method stores into the buffer before returning.
        let computed = [
            0x14, 0x0c, b'_', b'C', b'R', b'S', 0x08, 0x70, 0x01, b'X', b'X', b'X', b'X',
        ];
        let mut ns = Namespace::new();
        ns.scan(&computed);
        assert_eq!(
            ns.static_buffer(&AmlPath::default(), b"_CRS"),
            Err(NotStatic::ComputedByMethod)
        );
    }

    #[test]
    fn an_unknown_term_stops_only_its_own_scope() {
        // Scope(\_SB) { Device(A) { Store(...) ... } Device(B) { Name(_UID, One) } }
        let mut a = vec![0x5b, 0x82, 0, b'A', b'_', b'_', b'_', 0x70, 0x01, 0x60];
        a[2] = (a.len() - 2) as u8;
        let mut b = vec![
            0x5b, 0x82, 0, b'B', b'_', b'_', b'_', 0x08, b'_', b'U', b'I', b'D', 0x01,
        ];
        b[2] = (b.len() - 2) as u8;
        let mut sb = vec![0x10, 0, b'\\', b'_', b'S', b'B', b'_'];
        sb.extend_from_slice(&a);
        sb.extend_from_slice(&b);
        sb[1] = (sb.len() - 1) as u8;
        let mut ns = Namespace::new();
        ns.scan(&sb);
        assert_eq!(
            ns.stopped,
            [Stop {
                table: 0,
                offset: 14,
                reason: StopReason::UnknownOpcode(0x70)
            }]
        );
        assert_eq!(
            ns.get(&path(&[b"_SB_", b"B___"]), b"_UID"),
            Some(AmlValue::Integer(1))
        );
    }

    #[test]
    fn lengths_past_the_scope_and_deep_nesting_are_stopped() {
        // A Scope whose PkgLength claims more than the table holds.
        let mut ns = Namespace::new();
        ns.scan(&[0x10, 0x3f, b'\\', 0x00]);
        assert_eq!(ns.stopped[0].reason, StopReason::Truncated);
        // 40 nested Scope(A___) (each one byte of PkgLength for 64 bytes max,
        // so build from the inside out with 2-byte lengths).
        let mut aml: Vec<u8> = Vec::new();
        for _ in 0..40 {
            let len = aml.len() + 2 + 4;
            let mut outer = vec![0x10, 0x40 | (len & 0x0f) as u8, (len >> 4) as u8];
            outer.extend_from_slice(b"A___");
            outer.extend_from_slice(&aml);
            aml = outer;
        }
        let mut ns = Namespace::new();
        ns.scan(&aml);
        assert_eq!(ns.stopped.len(), 1);
        assert_eq!(ns.stopped[0].reason, StopReason::TooDeep);
    }
}
