//! What can go wrong with an NVMe controller.

use crate::prp::PrpError;
use crate::status::Status;
use core::fmt;
use stratus_driver_api::{BlockError, IoMemError, ServiceError};

/// Why bring-up or a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmeError {
    /// BAR0 is missing or is not a memory BAR.
    NoRegisterBar,
    /// The kernel could not map the registers or provide memory.
    Service(ServiceError),
    /// A register access fell outside BAR0 (a doorbell stride or queue
    /// count that does not fit the BAR).
    Register(IoMemError),
    /// The registers read as all ones: the function is gone, or its BAR
    /// is not decoded.
    NotResponding,
    /// The controller does not implement the NVM command set (CAP.CSS).
    NoNvmCommandSet,
    /// The controller's smallest page (CAP.MPSMIN) is larger than 4 KiB.
    PageSizeUnsupported(u64),
    /// CSTS.RDY did not reach `ready` within CAP.TO.
    ReadyTimeout {
        /// The state waited for.
        ready: bool,
        /// How long the driver waited, in milliseconds.
        waited_ms: u64,
    },
    /// CSTS.SHST did not report shutdown complete within CAP.TO.
    ShutdownTimeout,
    /// The controller reported a fatal error (CSTS.CFS) while the driver
    /// was doing `during`.
    ControllerFatal {
        /// What the driver was doing.
        during: &'static str,
    },
    /// A command did not complete within its bound.
    CommandTimeout {
        /// The command's name.
        command: &'static str,
    },
    /// A command completed with an error status.
    Command {
        /// The command's name.
        command: &'static str,
        /// The status it completed with.
        status: Status,
    },
    /// The transfer could not be described with PRPs.
    Prp(PrpError),
    /// The controller granted no I/O queue, or creating the first failed.
    NoIoQueues,
    /// No command slot of the queue became free within the command
    /// timeout: earlier commands never completed.
    NoFreeSlot,
    /// The submission ring had no room (a bookkeeping error: slots are
    /// never more than the ring holds).
    QueueFull,
}

impl From<IoMemError> for NvmeError {
    fn from(error: IoMemError) -> Self {
        Self::Register(error)
    }
}

impl From<ServiceError> for NvmeError {
    fn from(error: ServiceError) -> Self {
        Self::Service(error)
    }
}

impl fmt::Display for NvmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRegisterBar => f.write_str("BAR0 is not a memory BAR"),
            Self::Service(e) => write!(f, "kernel service failed: {e}"),
            Self::Register(e) => write!(f, "{e}"),
            Self::NotResponding => {
                f.write_str("the registers read as all ones (no device answers)")
            }
            Self::NoNvmCommandSet => f.write_str("the NVM command set is not supported (CAP.CSS)"),
            Self::PageSizeUnsupported(size) => {
                write!(
                    f,
                    "the smallest page size is {size} bytes, 4 KiB is needed (CAP.MPSMIN)"
                )
            }
            Self::ReadyTimeout { ready, waited_ms } => write!(
                f,
                "CSTS.RDY did not become {} within {waited_ms} ms (CAP.TO)",
                u8::from(*ready)
            ),
            Self::ShutdownTimeout => {
                f.write_str("CSTS.SHST did not report shutdown complete within CAP.TO")
            }
            Self::ControllerFatal { during } => {
                write!(f, "controller fatal status (CSTS.CFS) during {during}")
            }
            Self::CommandTimeout { command } => write!(f, "{command} timed out"),
            Self::Command { command, status } => write!(f, "{command} failed: {status}"),
            Self::Prp(e) => write!(f, "transfer not describable with PRPs: {e:?}"),
            Self::NoIoQueues => f.write_str("no I/O queue could be created"),
            Self::QueueFull => f.write_str("the submission queue is full"),
            Self::NoFreeSlot => f.write_str(
                "no command slot became free in time (earlier commands never completed)",
            ),
        }
    }
}

impl From<NvmeError> for BlockError {
    fn from(error: NvmeError) -> Self {
        match error {
            NvmeError::CommandTimeout { .. } | NvmeError::NoFreeSlot => BlockError::Timeout,
            NvmeError::Service(ServiceError::NoMemory) => BlockError::NoMemory,
            NvmeError::Command { status, .. } => BlockError::Device(status.name()),
            NvmeError::ControllerFatal { .. } => BlockError::Device("Controller Fatal Status"),
            NvmeError::Prp(_) => BlockError::Device("transfer not describable with PRPs"),
            _ => BlockError::Device("controller error"),
        }
    }
}
