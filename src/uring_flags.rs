//! Cooperative task running for every io_uring this process creates.
//!
//! By default the kernel completes a socket poll on an io_uring by interrupting the
//! ring's thread with an inter-processor interrupt, wherever that thread is. Every
//! request that reaches a busy core costs it such an interrupt, and in a virtual
//! machine each one is a pair of exits to the hypervisor: on our 2-vCPU machines this
//! took a third of a core's throughput (see `perf/README.md`).
//! `IORING_SETUP_COOP_TASKRUN` (Linux 5.19) makes the kernel run that work at the
//! thread's next kernel transition instead, which an executor makes all the time
//! (every send, every submission, every park), and at the latest at the next timer
//! tick. `IORING_SETUP_TASKRUN_FLAG` goes with it.
//!
//! glommio 0.9 creates its rings without setup flags and offers no way to pass them.
//! Its bundled liburing creates a ring with libc's `syscall(SYS_io_uring_setup, ...)`,
//! so the binary defines `syscall` itself: a forwarder to the kernel that, once
//! [`enable`] has run, adds the two flags to `io_uring_setup` (and retries without them
//! if the kernel refuses). Every other call passes through unchanged, with libc's
//! conventions (-1 and `errno` on failure). Only the `ringkv` binary carries this; the
//! library does not, so a program that links `ringkv` as a crate keeps its libc.
//! x86-64 Linux only; elsewhere nothing is interposed and the rings keep the default.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG` from `linux/io_uring.h`.
const COOPERATIVE: u32 = (1 << 8) | (1 << 9);

static ENABLED: AtomicBool = AtomicBool::new(false);
static RINGS: AtomicU32 = AtomicU32::new(0);

/// From now on, rings are created with cooperative task running.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// How many rings were created with the flags so far.
#[cfg(test)]
fn cooperative_rings() -> u32 {
    RINGS.load(Ordering::Relaxed)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod interpose {
    use std::sync::atomic::Ordering;

    use libc::c_long;

    /// libc's `syscall(number, ...)`. The SysV x86-64 ABI passes the integer arguments of
    /// a variadic call exactly as those of a fixed one (six registers, then the stack),
    /// so reading seven fixed arguments sees whatever the caller passed; the extra ones
    /// are ignored by the kernel, as with libc's own implementation.
    ///
    /// # Safety
    /// The caller upholds the contract of the system call it makes, as with libc's.
    #[no_mangle]
    pub unsafe extern "C" fn syscall(
        number: c_long,
        a1: c_long,
        a2: c_long,
        a3: c_long,
        a4: c_long,
        a5: c_long,
        a6: c_long,
    ) -> c_long {
        if number == libc::SYS_io_uring_setup && super::ENABLED.load(Ordering::Relaxed) {
            // a2 is `struct io_uring_params *`; `flags` is its third u32.
            let flags = (a2 as *mut u32).add(2);
            let asked = flags.read();
            flags.write(asked | super::COOPERATIVE);
            let fd = raw(number, [a1, a2, a3, a4, a5, a6]);
            if fd >= 0 {
                super::RINGS.fetch_add(1, Ordering::Relaxed);
                return fd;
            }
            flags.write(asked);
        }
        let result = raw(number, [a1, a2, a3, a4, a5, a6]);
        if (-4095..0).contains(&result) {
            *libc::__errno_location() = -result as i32;
            return -1;
        }
        result
    }

    /// The system call itself: the kernel's result, a negative errno on failure.
    unsafe fn raw(number: c_long, args: [c_long; 6]) -> c_long {
        let result: c_long;
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        result
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn forwards_calls_and_errors_like_libc() {
        // SAFETY: getpid takes no arguments; close of a bad descriptor only fails.
        unsafe {
            assert_eq!(
                interpose::syscall(libc::SYS_getpid, 0, 0, 0, 0, 0, 0),
                std::process::id() as libc::c_long
            );
            assert_eq!(interpose::syscall(libc::SYS_close, -1, 0, 0, 0, 0, 0), -1);
            assert_eq!(*libc::__errno_location(), libc::EBADF);
        }
    }

    #[test]
    fn executors_get_cooperative_rings() {
        enable();
        let before = cooperative_rings();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 * 1024)
            .spawn(|| async {})
            .expect("executor")
            .join()
            .expect("join");
        // glommio makes three rings per executor: main, latency and poll.
        assert!(cooperative_rings() >= before + 3, "{}", cooperative_rings());
    }
}
