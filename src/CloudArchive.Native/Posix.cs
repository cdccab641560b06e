using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>The few POSIX calls .NET does not expose: an atomic no-replace rename, hard links, fsync of a directory, setenv, prctl.</summary>
public static partial class Posix
{
    private const int AtFdCwd = -100;
    private const uint RenameNoReplace = 1;
    private const int ORdOnly = 0, OWrOnly = 1, ODirectory = 0x10000, OCloExec = 0x80000;
    /// <summary>errno values of Linux that the callers tell apart.</summary>
    public const int EExist = 17, EInval = 22, ENoSys = 38, EOpNotSupp = 95, EPerm = 1, EXDev = 18, EMLink = 31;

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LinkNative(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    private const uint SyncFileRangeWrite = 2;

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int FAdvise(int fd, long offset, long length, int advice);

    private const int FAdviseWillNeed = 3;

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "setenv", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrCtl(int option, nint arg2, nint arg3, nint arg4, nint arg5);

    private const int PrSetDumpable = 4;

    /// <summary>
    /// prctl(PR_SET_DUMPABLE, 0): no core dump, and /proc/PID/environ, mem and the like become root's, so another
    /// process of the same user can neither read this one's environment (the store's credentials) nor attach to it.
    /// Programs this process starts are dumpable again (execve resets it).
    /// </summary>
    public static void SetNotDumpable()
    {
        if (PrCtl(PrSetDumpable, 0, 0, 0, 0) != 0) throw new IOException($"prctl(PR_SET_DUMPABLE) failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>
    /// setenv(3): changes the C library's environment of this process, which native code (OpenSSL) reads; .NET's
    /// Environment.SetEnvironmentVariable changes only its own copy. Children started by .NET do not see it.
    /// </summary>
    public static void SetNativeEnvironment(string name, string value)
    {
        if (SetEnv(name, value, 1) != 0) throw new IOException($"setenv {name} failed (errno {Marshal.GetLastPInvokeError()})");
    }

    [LibraryImport("libc", EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatFs(string path, byte* buffer);

    /// <summary>
    /// The file system <paramref name="path"/> is on, as statfs(2) names it: its type and its id (f_fsid, derived from the
    /// file system's UUID on ext4, btrfs and tmpfs, from the server's export on NFS), as "TYPE:ID" in hex. Another file
    /// system gives another string: the root disk under an unmounted volume's mount point, say.
    /// </summary>
    public static unsafe string FileSystemIdentity(string path)
    {
        // struct statfs of 64-bit Linux (x86_64 and arm64 alike): f_type at 0, f_fsid (two ints) at 56, 120 bytes in all.
        var buffer = stackalloc byte[128];
        if (StatFs(path, buffer) != 0) throw new IOException($"statfs {path} failed (errno {Marshal.GetLastPInvokeError()})");
        var type = *(long*)buffer;
        var id = *(ulong*)(buffer + 56);
        return $"{type:x}:{id:x16}";
    }

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LStat(string path, byte* buffer);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEUid();

    /// <summary>This process's effective user id.</summary>
    public static uint EffectiveUserId => GetEUid();

    /// <summary>The user id that owns <paramref name="path"/> itself (a link's own, not its target's).</summary>
    public static uint OwnerOf(string path) => OwnersOf(path).User;

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static unsafe partial int SocketPairNative(int domain, int type, int protocol, int* pair);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    /// <summary>
    /// A pair of connected Unix sockets (SOCK_SEQPACKET: message boundaries kept) of which <c>Inherited</c> passes to the
    /// programs this process starts next (no close-on-exec) and <c>Kept</c> does not. Close the inherited one here once
    /// the program that needs it has started.
    /// </summary>
    public static unsafe (int Kept, int Inherited) InheritedSocketPair()
    {
        const int afUnix = 1, sockSeqPacket = 5, setDescriptorFlags = 2;
        var pair = stackalloc int[2];
        if (SocketPairNative(afUnix, sockSeqPacket | OCloExec, 0, pair) != 0)
            throw new IOException($"socketpair failed (errno {Marshal.GetLastPInvokeError()})");
        if (Fcntl(pair[1], setDescriptorFlags, 0) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Close(pair[0]);
            Close(pair[1]);
            throw new IOException($"fcntl failed (errno {errno})");
        }
        return (pair[0], pair[1]);
    }

    /// <summary>close(2) of a descriptor this process made itself.</summary>
    public static void CloseDescriptor(int fd) => Close(fd);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LChownNative(string path, uint owner, uint group);

    /// <summary>The user and group ids that own <paramref name="path"/> itself (a link's own).</summary>
    public static unsafe (uint User, uint Group) OwnersOf(string path)
    {
        // struct stat: st_uid, st_gid at 28, 32 on x86_64; at 24, 28 on arm64.
        var buffer = stackalloc byte[256];
        if (LStat(path, buffer) != 0) throw new IOException($"lstat {path} failed (errno {Marshal.GetLastPInvokeError()})");
        var at = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 24 : 28;
        return (*(uint*)(buffer + at), *(uint*)(buffer + at + 4));
    }

    /// <summary>lchown(2): gives <paramref name="path"/> itself (not a link's target) to <paramref name="user"/> and <paramref name="group"/>.</summary>
    public static void ChangeOwner(string path, uint user, uint group)
    {
        if (LChownNative(path, user, group) != 0) throw new IOException($"chown {path} failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>rename(2) that fails with EEXIST instead of replacing; returns 0 or errno.</summary>
    public static int RenameNoReplaceErrno(string from, string to) =>
        RenameAt2(AtFdCwd, from, AtFdCwd, to, RenameNoReplace) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>link(2); returns 0 or errno.</summary>
    public static int LinkErrno(string from, string to) => LinkNative(from, to) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>
    /// Starts writing a file's dirty pages back to its disk without waiting (sync_file_range, as PostgreSQL's own
    /// writeback hints do), so a later fsync finds little left to write. Only a hint: errors are for the fsync to report.
    /// </summary>
    /// <param name="offset">Where the range starts; with <paramref name="length"/> 0, the whole file from there.</param>
    public static void StartWriteback(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset = 0, long length = 0)
    {
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            SyncFileRange((int)handle.DangerousGetHandle(), offset, length, SyncFileRangeWrite);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Asks the kernel to start reading a file's range into the page cache now (posix_fadvise WILLNEED), so scattered
    /// reads that follow find it there instead of waiting for the disk one at a time. Only a hint: errors are ignored.
    /// </summary>
    public static void AdviseWillNeed(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, long length)
    {
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            _ = FAdvise((int)handle.DangerousGetHandle(), offset, length, FAdviseWillNeed);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Opens a file for reading past the page cache (O_DIRECT); null when that cannot be done (a file system that refuses it,
    /// or the file is gone: the caller reads it the usual way, or finds it gone there).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenDirectRead(string path)
    {
        var direct = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;
        var fd = Open(path, ORdOnly | direct | OCloExec);
        return fd >= 0 ? new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true) : null;
    }

    /// <summary>
    /// Opens an existing file for writing past the page cache (O_DIRECT); null when its file system refuses that (tmpfs before
    /// Linux 6.6, some FUSE and network file systems).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenDirectWrite(string path)
    {
        // O_DIRECT's value differs between architectures.
        var direct = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;
        var fd = Open(path, OWrOnly | direct | OCloExec);
        if (fd >= 0) return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var errno = Marshal.GetLastPInvokeError();
        if (errno == EInval) return null;
        throw new IOException($"cannot open {path} for writing (errno {errno})");
    }

    /// <summary>Makes a directory's entries (a new or renamed file) durable.</summary>
    public static void FSyncDirectory(string path) => FSyncPath(path, ORdOnly | ODirectory | OCloExec);

    /// <summary>Makes a file's content durable (one written by another process, or by a run that was killed).</summary>
    public static void FSyncFile(string path) => FSyncPath(path, ORdOnly | OCloExec);

    private static void FSyncPath(string path, int flags)
    {
        var fd = Open(path, flags);
        if (fd < 0) throw new IOException($"cannot open {path} to sync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            if (FSync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                // Some file systems cannot sync a directory; their renames are as durable as they get.
                if (errno is not (EInval or EOpNotSupp))
                    throw new IOException($"fsync of {path} failed (errno {errno})");
            }
        }
        finally
        {
            Close(fd);
        }
    }
}
