//! A spin lock that masks interrupts on the CPU holding it.
//!
//! Data that interrupt handlers touch (the logger, the dispatch table, the
//! timer state) must not be locked with interrupts unmasked: a handler that
//! interrupts the holder and takes the same lock would spin forever on its
//! own CPU. [`IrqSafeSpinlock::lock`] saves whether interrupts were
//! unmasked, masks them, then spins; dropping the guard releases the lock
//! and unmasks only if they were unmasked before, so nested locks released
//! in reverse order of taking restore the state the outermost one found.
//!
//! The masking functions come from the architecture through
//! [`set_interrupt_masking`] (boot does this first); before that, interrupts
//! are masked anyway (the CPU enters the kernel with them off) and locking
//! only spins.

use core::ops::{Deref, DerefMut};
use spin::{Mutex, MutexGuard, Once};

/// How the architecture masks and unmasks interrupts on the executing CPU.
#[derive(Clone, Copy, Debug)]
pub struct InterruptMasking {
    /// Whether interrupts are unmasked now.
    pub enabled: fn() -> bool,
    /// Masks interrupts.
    pub disable: fn(),
    /// Unmasks interrupts.
    pub enable: fn(),
}

static MASKING: Once<InterruptMasking> = Once::new();

/// Installs the architecture's masking functions (once; later calls are
/// ignored).
pub fn set_interrupt_masking(masking: InterruptMasking) {
    MASKING.call_once(|| masking);
}

/// Masks interrupts and returns whether they were unmasked.
fn save_and_mask() -> bool {
    match MASKING.get() {
        Some(m) => {
            let was = (m.enabled)();
            (m.disable)();
            was
        }
        None => false,
    }
}

fn restore(was_enabled: bool) {
    if was_enabled && let Some(m) = MASKING.get() {
        (m.enable)();
    }
}

/// A spin lock whose holder runs with interrupts masked.
pub struct IrqSafeSpinlock<T> {
    inner: Mutex<T>,
}

/// Access to the data of an [`IrqSafeSpinlock`]; interrupts stay masked
/// while it lives.
pub struct IrqSafeGuard<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
    was_enabled: bool,
}

impl<T> IrqSafeSpinlock<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        Self {
            inner: Mutex::new(value),
        }
    }

    /// Masks interrupts, then takes the lock.
    pub fn lock(&self) -> IrqSafeGuard<'_, T> {
        let was_enabled = save_and_mask();
        IrqSafeGuard {
            guard: Some(self.inner.lock()),
            was_enabled,
        }
    }

    /// Takes the lock if it is free (interrupts masked while held).
    pub fn try_lock(&self) -> Option<IrqSafeGuard<'_, T>> {
        let was_enabled = save_and_mask();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqSafeGuard {
                guard: Some(guard),
                was_enabled,
            }),
            None => {
                restore(was_enabled);
                None
            }
        }
    }

    /// Releases the lock whoever holds it.
    ///
    /// # Safety
    /// Only for the panic path: the holder must never run again.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: the caller guarantees the holder never touches the data again.
        unsafe { self.inner.force_unlock() }
    }
}

impl<T> Deref for IrqSafeGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // The guard is only taken out in `drop`.
        self.guard.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl<T> DerefMut for IrqSafeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T> Drop for IrqSafeGuard<'_, T> {
    fn drop(&mut self) {
        // Release the lock first, then unmask: an interrupt arriving at once
        // finds the lock free.
        drop(self.guard.take());
        restore(self.was_enabled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    static ENABLED: AtomicBool = AtomicBool::new(true);
    static TRANSITIONS: AtomicUsize = AtomicUsize::new(0);

    fn enabled() -> bool {
        ENABLED.load(Ordering::SeqCst)
    }
    fn disable() {
        ENABLED.store(false, Ordering::SeqCst);
    }
    fn enable() {
        TRANSITIONS.fetch_add(1, Ordering::SeqCst);
        ENABLED.store(true, Ordering::SeqCst);
    }

    #[test]
    fn masks_while_held_and_restores_nesting() {
        set_interrupt_masking(InterruptMasking {
            enabled,
            disable,
            enable,
        });
        let a = IrqSafeSpinlock::new(1);
        let b = IrqSafeSpinlock::new(2);
        ENABLED.store(true, Ordering::SeqCst);
        let before = TRANSITIONS.load(Ordering::SeqCst);
        let ga = a.lock();
        assert!(!enabled());
        let gb = b.lock();
        assert!(b.try_lock().is_none(), "held lock must not be taken twice");
        assert!(!enabled(), "a failed try_lock keeps the outer mask");
        // The inner guard was taken with interrupts masked: it must not
        // unmask them.
        assert_eq!(*gb, 2);
        drop(gb);
        assert!(!enabled(), "inner guard unmasked interrupts");
        drop(ga);
        assert!(enabled(), "outer guard did not restore");
        disable();
        // Taken with interrupts masked: they stay masked.
        drop(a.lock());
        assert!(!enabled());
        ENABLED.store(true, Ordering::SeqCst);
        {
            let mut g = a.lock();
            *g += 1;
            assert!(!enabled());
        }
        assert!(enabled(), "unmasked again when the only guard drops");
        assert_eq!(*a.lock(), 2);
        assert!(TRANSITIONS.load(Ordering::SeqCst) > before);
    }
}
