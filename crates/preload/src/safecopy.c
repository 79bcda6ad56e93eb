/*
 * softiommu_safe_copy: a memcpy that reports a fault instead of taking it.
 *
 * Why: the interposer reads and writes the program's memory (ioctl arguments,
 * open() paths, pinned pages) on every call. process_vm_readv/writev are safe
 * but cost a system call each (~1.4 us), several per ioctl; a plain memcpy
 * costs nanoseconds but a bad pointer, or a page the program has unmapped,
 * would kill the program inside our code. So: memcpy under a SIGSEGV/SIGBUS
 * handler that, while this thread is inside a safe copy, jumps back out of it
 * and makes the copy return -1 (the caller's EFAULT).
 *
 * The price is owning SIGSEGV and SIGBUS. Our handler stays installed for the
 * life of the process; sigaction(), signal() and friends for those two signals
 * are interposed so that the program's handler is recorded rather than
 * installed, the program still sees its own view through oldact, and every
 * fault that is not ours is handed to the program's handler as the kernel
 * would have delivered it. All other signals are passed through untouched.
 *
 * One case the handler cannot cover: the kernel does not run any handler for
 * a fault while the faulting signal is blocked, it kills the process. So once
 * the program has blocked SIGSEGV or SIGBUS in any thread (sigprocmask,
 * pthread_sigmask), or our handler is not installed, the copy falls back to
 * process_vm_readv, which is safe under any mask.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN int softiommu_safe_copy(void *dst, const void *src, size_t n);

/*
 * The innermost safe copy on this thread (NULL: none). A pointer to a jump
 * buffer on the copier's stack rather than one buffer and a flag, so that a
 * copy made by a signal handler that interrupted a copy (our sigaction reads
 * its argument safely) restores the outer one. initial-exec: the library is
 * preloaded, so its TLS is in the static block, and reading it from a signal
 * handler is one load (no __tls_get_addr, which may allocate).
 */
static __thread sigjmp_buf *volatile current_copy
	__attribute__((tls_model("initial-exec")));

/* Set on this thread while a program's SIGSEGV/SIGBUS handler runs with its
 * signal blocked, and left set if the handler never returns (longjmp): the
 * mask may still block it, so the next copy asks the kernel before going
 * fast. Per thread, so that one fault handled that way slows no one else. */
static __thread volatile sig_atomic_t mask_unsure
	__attribute__((tls_model("initial-exec")));

/* The program's view of SIGSEGV and SIGBUS: what it last set, or what was in
 * place when we installed ours (SIG_DFL, or SIG_IGN inherited across exec). */
static struct sigaction program_action[2];
/* Whether our handler is installed for each; guarded by `lock`. */
static int ours_installed[2];
/* The real functions were found; without them everything passes through. */
static int ready;
/* Fast path allowed: both handlers ours, and SIGSEGV/SIGBUS never blocked. */
static int fast;
/* Guards program_action and ours_installed. Held for a few stores with every
 * signal blocked, so a handler on the same thread can never wait for it. */
static char lock_word;

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);
static sigaction_fn real_sigaction;
static sigmask_fn real_sigprocmask, real_pthread_sigmask;

static int slot(int sig)
{
	return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : -1;
}

static void resolve(void)
{
	if (!real_sigaction)
		real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	if (!real_sigprocmask)
		real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
	if (!real_pthread_sigmask)
		real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
}

static void lock(sigset_t *saved)
{
	sigset_t all;
	sigfillset(&all);
	real_pthread_sigmask(SIG_BLOCK, &all, saved);
	while (__atomic_test_and_set(&lock_word, __ATOMIC_ACQUIRE))
		;
}

static void unlock(const sigset_t *saved)
{
	__atomic_clear(&lock_word, __ATOMIC_RELEASE);
	real_pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* When SIGSEGV or SIGBUS gets blocked, in any thread, we leave the fast path
 * for good (see the top of the file). Noted before the mask changes, so no
 * safe copy ever runs fast with them blocked. Masks come from sigprocmask and
 * pthread_sigmask, the mask inherited across exec, and the sa_mask of any
 * other signal's handler (a handler left with longjmp keeps it); for a
 * program's SIGSEGV/SIGBUS handler see mask_unsure. */
static int blocks_faults(const sigset_t *set)
{
	return sigismember(set, SIGSEGV) == 1 || sigismember(set, SIGBUS) == 1;
}

static void note_mask(int how, const sigset_t *set)
{
	if (set && how != SIG_UNBLOCK && blocks_faults(set))
		__atomic_store_n(&fast, 0, __ATOMIC_RELAXED);
}

/* A fault that is not ours: what the kernel would have done with it. */
static void deliver_to_program(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	/* si_code > 0: raised by the kernel (a fault of this thread's own access,
	 * which re-executes on return); <= 0: sent with kill(), sigqueue() etc. */
	int fault = si->si_code > 0;
	sigset_t saved;
	lock(&saved);
	struct sigaction act = program_action[slot(sig)];
	int resethand = (act.sa_flags & SA_RESETHAND) && act.sa_handler != SIG_DFL &&
			act.sa_handler != SIG_IGN;
	if (resethand) /* the kernel resets before delivering */
		program_action[slot(sig)].sa_handler = SIG_DFL;
	int dfl = act.sa_handler == SIG_DFL || (act.sa_handler == SIG_IGN && fault);
	if (dfl) {
		/* A fault cannot be ignored: the kernel forces the default action. Put
		 * the real default back and return; the faulting instruction runs again
		 * and the kernel kills the process as it would have. A sent signal is
		 * raised again. From here on every call passes through. */
		struct sigaction def = { .sa_handler = SIG_DFL };
		sigemptyset(&def.sa_mask);
		real_sigaction(sig, &def, NULL);
		ours_installed[slot(sig)] = 0;
		__atomic_store_n(&fast, 0, __ATOMIC_RELAXED);
	}
	unlock(&saved);
	if (dfl && !fault)
		raise(sig); /* not blocked (SA_NODEFER): delivered before it returns */
	if (act.sa_handler == SIG_DFL || act.sa_handler == SIG_IGN) {
		errno = saved_errno;
		return;
	}
	/* The program's handler runs with its sa_mask (and the signal, unless
	 * SA_NODEFER) blocked, as the kernel arranges; returning from ours restores
	 * the interrupted mask from uc, which the handler may have edited. */
	sigset_t mask = act.sa_mask;
	if (!(act.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	sig_atomic_t was_unsure = mask_unsure;
	if (blocks_faults(&mask))
		mask_unsure = 1;
	real_pthread_sigmask(SIG_BLOCK, &mask, NULL);
	errno = saved_errno;
	/* The kernel passes siginfo and ucontext whether or not SA_SIGINFO was set
	 * (x86_64 always loads them); a one-argument handler ignores them. */
	((void (*)(int, siginfo_t *, void *))act.sa_sigaction)(sig, si, uc);
	/* Returned: the kernel puts the interrupted mask back. */
	mask_unsure = was_unsure;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *env = current_copy;
	if (env && si->si_code > 0)
		siglongjmp(*env, 1); /* ours: the copy returns -1 */
	deliver_to_program(sig, si, uc);
}

/* Installs our handler (once: at load, or at the first interposed call if
 * another library's constructor calls one before ours runs). */
static void install(void)
{
	static int state; /* 0: not yet, 1: under way, 2: done */
	int expected = 0;
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == 2)
		return;
	if (!__atomic_compare_exchange_n(&state, &expected, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != 2)
			;
		return;
	}
	resolve();
	ready = real_sigaction && real_sigprocmask && real_pthread_sigmask;
	if (ready) {
		/* SA_NODEFER and an empty sa_mask: the handler changes no mask, so
		 * jumping out of it needs no mask restore (sigsetjmp(env, 0), no
		 * system call per copy). SA_ONSTACK: a program that handles stack
		 * overflow (Rust, Go) has an alternate stack and needs it. */
		struct sigaction ours = { .sa_sigaction = on_fault,
					  .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER };
		sigemptyset(&ours.sa_mask);
		sigset_t saved;
		lock(&saved);
		for (int i = 0; i < 2; i++) {
			int sig = i ? SIGBUS : SIGSEGV;
			ours_installed[i] = real_sigaction(sig, &ours, &program_action[i]) == 0;
		}
		__atomic_store_n(&fast, ours_installed[0] && ours_installed[1], __ATOMIC_RELAXED);
		/* The interrupted mask (`saved`) is the one inherited across exec. */
		note_mask(SIG_BLOCK, &saved);
		unlock(&saved);
	}
	__atomic_store_n(&state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void softiommu_safecopy_init(void)
{
	install();
}

/* The slow, always-safe way: the kernel copies (copy_to_user into dst,
 * get_user_pages on src) and reports a bad address as an error. */
static int copy_by_kernel(void *dst, const void *src, size_t n)
{
	struct iovec local = { dst, n }, remote = { (void *)src, n };
	int saved_errno = errno;
	ssize_t r = n ? process_vm_readv(getpid(), &local, 1, &remote, 1, 0) : 0;
	errno = saved_errno;
	return r == (ssize_t)n ? 0 : -1;
}

HIDDEN int softiommu_safe_copy(void *dst, const void *src, size_t n)
{
	if (!__atomic_load_n(&fast, __ATOMIC_RELAXED))
		return copy_by_kernel(dst, src, n);
	if (mask_unsure) {
		sigset_t cur;
		real_pthread_sigmask(SIG_BLOCK, NULL, &cur);
		if (blocks_faults(&cur))
			return copy_by_kernel(dst, src, n);
		mask_unsure = 0;
	}
	sigjmp_buf env;
	sigjmp_buf *outer = current_copy;
	if (sigsetjmp(env, 0)) {
		current_copy = outer;
		return -1;
	}
	current_copy = &env;
	/* The handler runs on this thread: a signal fence keeps the compiler from
	 * moving the copy outside the window in which current_copy is set. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(dst, src, n);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	current_copy = outer;
	return 0;
}

/* sigaction for SIGSEGV/SIGBUS: record, report, keep ours. Argument pointers
 * are read and written safely, so a bad one is EFAULT (libc's own would
 * crash reading it). */
static int sigaction_common(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	install();
	int i = slot(sig);
	struct sigaction in, prev;
	memset(&prev, 0, sizeof(prev));
	int bad_act = act && softiommu_safe_copy(&in, act, sizeof(in));
	if (i < 0 || !ready) {
		if (!real_sigaction) {
			errno = ENOSYS;
			return -1;
		}
		if (act && !bad_act && in.sa_handler != SIG_DFL && in.sa_handler != SIG_IGN)
			note_mask(SIG_BLOCK, &in.sa_mask);
		return real_sigaction(sig, act, oldact);
	}
	if (bad_act) {
		errno = EFAULT;
		return -1;
	}
	sigset_t saved;
	lock(&saved);
	int ours = ours_installed[i];
	if (ours) {
		prev = program_action[i];
		if (act)
			program_action[i] = in;
	}
	unlock(&saved);
	if (!ours) /* handed back to the kernel after a fatal fault */
		return real_sigaction(sig, act ? &in : NULL, oldact);
	if (oldact && softiommu_safe_copy(oldact, &prev, sizeof(prev))) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	return sigaction_common(sig, act, oldact);
}

int __sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	return sigaction_common(sig, act, oldact);
}

/* signal()-style calls: for SIGSEGV/SIGBUS, the sigaction glibc would make;
 * otherwise the real function of the same name, resolved on first use. */
typedef sighandler_t (*signal_fn)(int, sighandler_t);

static sighandler_t signal_common(signal_fn *real, const char *name, int sig,
				  sighandler_t handler, int sysv)
{
	if (slot(sig) < 0) {
		signal_fn f = __atomic_load_n(real, __ATOMIC_ACQUIRE);
		if (!f) {
			f = (signal_fn)dlsym(RTLD_NEXT, name);
			__atomic_store_n(real, f, __ATOMIC_RELEASE);
		}
		if (!f) {
			errno = ENOSYS;
			return SIG_ERR;
		}
		return f(sig, handler);
	}
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	struct sigaction act = { .sa_handler = handler }, old;
	sigemptyset(&act.sa_mask);
	if (sysv) {
		act.sa_flags = SA_RESETHAND | SA_NODEFER; /* System V: one-shot */
	} else {
		sigaddset(&act.sa_mask, sig); /* BSD: blocked while handled */
		act.sa_flags = SA_RESTART;
	}
	if (sigaction_common(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

#define SIGNAL_FN(name, sysv)                                                   \
	sighandler_t name(int sig, sighandler_t handler)                        \
	{                                                                       \
		static signal_fn real;                                          \
		return signal_common(&real, #name, sig, handler, sysv);         \
	}

SIGNAL_FN(signal, 0)
SIGNAL_FN(bsd_signal, 0)
SIGNAL_FN(sysv_signal, 1)
SIGNAL_FN(__sysv_signal, 1)

int sigprocmask(int how, const sigset_t *set, sigset_t *oldset)
{
	install();
	if (!real_sigprocmask) {
		errno = ENOSYS;
		return -1;
	}
	note_mask(how, set);
	return real_sigprocmask(how, set, oldset);
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *oldset)
{
	install();
	if (!real_pthread_sigmask)
		return ENOSYS;
	note_mask(how, set);
	return real_pthread_sigmask(how, set, oldset);
}
