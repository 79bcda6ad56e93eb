/*
 * The interposer's variadic entry points. Rust (stable) cannot define a C
 * variadic function, so each one here reads its optional argument the way libc
 * does and hands everything, with fixed arguments, to the Rust side (ffi.rs).
 * Nothing else happens in C.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>

#undef open64
#undef openat64
#undef fcntl64

/* Which libc function the call came in as, so a pass-through calls the same. */
enum { SOFTIOMMU_OPEN, SOFTIOMMU_OPEN64, SOFTIOMMU_OPENAT, SOFTIOMMU_OPENAT64 };
enum { SOFTIOMMU_FCNTL, SOFTIOMMU_FCNTL64 };

int softiommu_openat(int dirfd, const char *path, int flags, unsigned int mode, int which);
int softiommu_ioctl(int fd, unsigned long request, void *arg);
int softiommu_fcntl(int fd, int cmd, unsigned long arg, int which);

/* A mode is passed only with O_CREAT or O_TMPFILE; reading it otherwise would
 * read garbage, which is harmless but pointless. */
#define MODE_ARG(flags, last, mode)                                             \
    do {                                                                        \
        if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) {        \
            va_list ap;                                                         \
            va_start(ap, last);                                                 \
            mode = va_arg(ap, unsigned int);                                    \
            va_end(ap);                                                         \
        }                                                                       \
    } while (0)

int open(const char *path, int flags, ...)
{
    unsigned int mode = 0;
    MODE_ARG(flags, flags, mode);
    return softiommu_openat(AT_FDCWD, path, flags, mode, SOFTIOMMU_OPEN);
}

int open64(const char *path, int flags, ...)
{
    unsigned int mode = 0;
    MODE_ARG(flags, flags, mode);
    return softiommu_openat(AT_FDCWD, path, flags, mode, SOFTIOMMU_OPEN64);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    unsigned int mode = 0;
    MODE_ARG(flags, flags, mode);
    return softiommu_openat(dirfd, path, flags, mode, SOFTIOMMU_OPENAT);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    unsigned int mode = 0;
    MODE_ARG(flags, flags, mode);
    return softiommu_openat(dirfd, path, flags, mode, SOFTIOMMU_OPENAT64);
}

/* glibc reads the third argument as a pointer whatever the request. */
int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return softiommu_ioctl(fd, request, arg);
}

/* Likewise for fcntl: an int or a pointer, read as a pointer-sized word. */
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return softiommu_fcntl(fd, cmd, arg, SOFTIOMMU_FCNTL);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return softiommu_fcntl(fd, cmd, arg, SOFTIOMMU_FCNTL64);
}
