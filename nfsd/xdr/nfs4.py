"""NFSv4 wire types: everything a COMPOUND or CB_COMPOUND of minor version 0, 1 or 2 can carry.

Sources of the facts (numbers, layouts, names):

  RFC 7530/7531  NFSv4.0 and its XDR (SETCLIENTID, RENEW, OPEN_CONFIRM, ..., CB_GETATTR, CB_RECALL)
  RFC 8881/5662  NFSv4.1 and its XDR (sessions, pNFS, the 4.1 callbacks); a superset of 4.0's types
  RFC 7862/7863  NFSv4.2 and its XDR (ALLOCATE ... CLONE, CB_OFFLOAD, attributes 77..80)
  RFC 8275       the mode_umask attribute (81)
  RFC 8276       extended attributes: GETXATTR .. REMOVEXATTR (72..75), xattr_support (82)
  RFC 5531       authsys_parms (carried in callback_sec_parms4)
  RFC 8435/8154  the flex-files and SCSI layout type numbers (so that a request naming them decodes
                 and can be answered with NFS4ERR_UNKNOWN_LAYOUTTYPE instead of NFS4ERR_BADXDR)

Where 4.0 and 4.1 differ only by additions (new enum values and union arms), the 4.1/4.2 form is
declared; it decodes every 4.0 message. Declarations follow the order of RFC 7863.

Conventions of this notation (see `nfsd.xdr.dsl`):
  * `entry4 *nextentry` is the only self-referencing chain in NFSv4: `entry4` is declared without
    it and `dirlist4.entries` is a `LinkedList(entry4)`.
  * `WRITE4args.data`, `READ4resok.data`, `data4.d_data` (READ_PLUS) and
    `app_data_block4.adb_pattern` (WRITE_SAME) decode to memoryviews of the request buffer.
  * A union's discriminant is `.tag` and its arm `.value`; arm names are kept here only as
    documentation. Unions switched on `nfsstat4` with `default: void` carry None on errors.

After compilation every struct and union name is a generated class (`nfs4.OPEN4args(...)`);
enum and typedef names are their declarations (usable with `nfsd.xdr.encode/decode`). Derived
tables: `OP_ARGS`, `OP_RES`, `OP_NAMES`, `CB_OP_ARGS`, `CB_OP_RES`, `CB_OP_NAMES`, `ATTRS`.
"""

from __future__ import annotations

from .dsl import (
    Bool,
    Hyper,
    Int,
    LinkedList,
    Opaque,
    Spec,
    String,
    Struct,
    UHyper,
    UInt,
    Union,
    VarArray,
    VarOpaque,
    Void,
)

spec = Spec("nfs4")


class _Constants:
    """`K.NAME` is a constant declared so far (enum members included), for union cases."""

    def __getattr__(self, name):
        try:
            return spec.consts[name]
        except KeyError:
            raise AttributeError(name) from None


K = _Constants()


def _consts(**values):
    for name, value in values.items():
        spec.const(name, value)


def _res(name, ok, *, errors=None):
    """`union NAME switch (nfsstat4 status) { case NFS4_OK: ok; [errors...] default: void; }`."""
    arms = {K.NFS4_OK: ok}
    arms.update(errors or {})
    return spec.union(name, nfsstat4, arms, default=Void)


def _status(name, field="status"):
    """`struct NAME { nfsstat4 field; }`: a result that is only a status."""
    return spec.struct(name, [(field, nfsstat4)])


# ------------------------------------------------------------------------------------- sizes
_consts(
    NFS4_FHSIZE=128,
    NFS4_VERIFIER_SIZE=8,
    NFS4_OTHER_SIZE=12,
    NFS4_OPAQUE_LIMIT=1024,
    NFS4_SESSIONID_SIZE=16,
    NFS4_INT64_MAX=0x7FFFFFFFFFFFFFFF,
    NFS4_UINT64_MAX=0xFFFFFFFFFFFFFFFF,
    NFS4_INT32_MAX=0x7FFFFFFF,
    NFS4_UINT32_MAX=0xFFFFFFFF,
    NFS4_MAXFILELEN=0xFFFFFFFFFFFFFFFF,
    NFS4_MAXFILEOFF=0xFFFFFFFFFFFFFFFE,
)

# ------------------------------------------------------------------------- file types, errors
nfs_ftype4 = spec.enum("nfs_ftype4", [
    ("NF4REG", 1),
    ("NF4DIR", 2),
    ("NF4BLK", 3),
    ("NF4CHR", 4),
    ("NF4LNK", 5),
    ("NF4SOCK", 6),
    ("NF4FIFO", 7),
    ("NF4ATTRDIR", 8),
    ("NF4NAMEDATTR", 9),
])

nfsstat4 = spec.enum("nfsstat4", [
    ("NFS4_OK", 0),
    ("NFS4ERR_PERM", 1),
    ("NFS4ERR_NOENT", 2),
    ("NFS4ERR_IO", 5),
    ("NFS4ERR_NXIO", 6),
    ("NFS4ERR_ACCESS", 13),
    ("NFS4ERR_EXIST", 17),
    ("NFS4ERR_XDEV", 18),
    # 19 is never allocated (it meant NODEV in NFSv3).
    ("NFS4ERR_NOTDIR", 20),
    ("NFS4ERR_ISDIR", 21),
    ("NFS4ERR_INVAL", 22),
    ("NFS4ERR_FBIG", 27),
    ("NFS4ERR_NOSPC", 28),
    ("NFS4ERR_ROFS", 30),
    ("NFS4ERR_MLINK", 31),
    ("NFS4ERR_NAMETOOLONG", 63),
    ("NFS4ERR_NOTEMPTY", 66),
    ("NFS4ERR_DQUOT", 69),
    ("NFS4ERR_STALE", 70),
    ("NFS4ERR_BADHANDLE", 10001),
    ("NFS4ERR_BAD_COOKIE", 10003),
    ("NFS4ERR_NOTSUPP", 10004),
    ("NFS4ERR_TOOSMALL", 10005),
    ("NFS4ERR_SERVERFAULT", 10006),
    ("NFS4ERR_BADTYPE", 10007),
    ("NFS4ERR_DELAY", 10008),
    ("NFS4ERR_SAME", 10009),
    ("NFS4ERR_DENIED", 10010),
    ("NFS4ERR_EXPIRED", 10011),
    ("NFS4ERR_LOCKED", 10012),
    ("NFS4ERR_GRACE", 10013),
    ("NFS4ERR_FHEXPIRED", 10014),
    ("NFS4ERR_SHARE_DENIED", 10015),
    ("NFS4ERR_WRONGSEC", 10016),
    ("NFS4ERR_CLID_INUSE", 10017),
    ("NFS4ERR_RESOURCE", 10018),  # 4.0 only
    ("NFS4ERR_MOVED", 10019),
    ("NFS4ERR_NOFILEHANDLE", 10020),
    ("NFS4ERR_MINOR_VERS_MISMATCH", 10021),
    ("NFS4ERR_STALE_CLIENTID", 10022),
    ("NFS4ERR_STALE_STATEID", 10023),
    ("NFS4ERR_OLD_STATEID", 10024),
    ("NFS4ERR_BAD_STATEID", 10025),
    ("NFS4ERR_BAD_SEQID", 10026),
    ("NFS4ERR_NOT_SAME", 10027),
    ("NFS4ERR_LOCK_RANGE", 10028),
    ("NFS4ERR_SYMLINK", 10029),
    ("NFS4ERR_RESTOREFH", 10030),
    ("NFS4ERR_LEASE_MOVED", 10031),
    ("NFS4ERR_ATTRNOTSUPP", 10032),
    ("NFS4ERR_NO_GRACE", 10033),
    ("NFS4ERR_RECLAIM_BAD", 10034),
    ("NFS4ERR_RECLAIM_CONFLICT", 10035),
    ("NFS4ERR_BADXDR", 10036),
    ("NFS4ERR_LOCKS_HELD", 10037),
    ("NFS4ERR_OPENMODE", 10038),
    ("NFS4ERR_BADOWNER", 10039),
    ("NFS4ERR_BADCHAR", 10040),
    ("NFS4ERR_BADNAME", 10041),
    ("NFS4ERR_BAD_RANGE", 10042),
    ("NFS4ERR_LOCK_NOTSUPP", 10043),
    ("NFS4ERR_OP_ILLEGAL", 10044),
    ("NFS4ERR_DEADLOCK", 10045),
    ("NFS4ERR_FILE_OPEN", 10046),
    ("NFS4ERR_ADMIN_REVOKED", 10047),
    ("NFS4ERR_CB_PATH_DOWN", 10048),
    # NFSv4.1
    ("NFS4ERR_BADIOMODE", 10049),
    ("NFS4ERR_BADLAYOUT", 10050),
    ("NFS4ERR_BAD_SESSION_DIGEST", 10051),
    ("NFS4ERR_BADSESSION", 10052),
    ("NFS4ERR_BADSLOT", 10053),
    ("NFS4ERR_COMPLETE_ALREADY", 10054),
    ("NFS4ERR_CONN_NOT_BOUND_TO_SESSION", 10055),
    ("NFS4ERR_DELEG_ALREADY_WANTED", 10056),
    ("NFS4ERR_BACK_CHAN_BUSY", 10057),
    ("NFS4ERR_LAYOUTTRYLATER", 10058),
    ("NFS4ERR_LAYOUTUNAVAILABLE", 10059),
    ("NFS4ERR_NOMATCHING_LAYOUT", 10060),
    ("NFS4ERR_RECALLCONFLICT", 10061),
    ("NFS4ERR_UNKNOWN_LAYOUTTYPE", 10062),
    ("NFS4ERR_SEQ_MISORDERED", 10063),
    ("NFS4ERR_SEQUENCE_POS", 10064),
    ("NFS4ERR_REQ_TOO_BIG", 10065),
    ("NFS4ERR_REP_TOO_BIG", 10066),
    ("NFS4ERR_REP_TOO_BIG_TO_CACHE", 10067),
    ("NFS4ERR_RETRY_UNCACHED_REP", 10068),
    ("NFS4ERR_UNSAFE_COMPOUND", 10069),
    ("NFS4ERR_TOO_MANY_OPS", 10070),
    ("NFS4ERR_OP_NOT_IN_SESSION", 10071),
    ("NFS4ERR_HASH_ALG_UNSUPP", 10072),
    # 10073 is unused.
    ("NFS4ERR_CLIENTID_BUSY", 10074),
    ("NFS4ERR_PNFS_IO_HOLE", 10075),
    ("NFS4ERR_SEQ_FALSE_RETRY", 10076),
    ("NFS4ERR_BAD_HIGH_SLOT", 10077),
    ("NFS4ERR_DEADSESSION", 10078),
    ("NFS4ERR_ENCR_ALG_UNSUPP", 10079),
    ("NFS4ERR_PNFS_NO_LAYOUT", 10080),
    ("NFS4ERR_NOT_ONLY_OP", 10081),
    ("NFS4ERR_WRONG_CRED", 10082),
    ("NFS4ERR_WRONG_TYPE", 10083),
    ("NFS4ERR_DIRDELEG_UNAVAIL", 10084),
    ("NFS4ERR_REJECT_DELEG", 10085),
    ("NFS4ERR_RETURNCONFLICT", 10086),
    ("NFS4ERR_DELEG_REVOKED", 10087),
    # NFSv4.2
    ("NFS4ERR_PARTNER_NOTSUPP", 10088),
    ("NFS4ERR_PARTNER_NO_AUTH", 10089),
    ("NFS4ERR_UNION_NOTSUPP", 10090),
    ("NFS4ERR_OFFLOAD_DENIED", 10091),
    ("NFS4ERR_WRONG_LFS", 10092),
    ("NFS4ERR_BADLABEL", 10093),
    ("NFS4ERR_OFFLOAD_NO_REQS", 10094),
    # RFC 8276 (extended attributes)
    ("NFS4ERR_NOXATTR", 10095),
    ("NFS4ERR_XATTR2BIG", 10096),
])

# -------------------------------------------------------------------------- basic data types
attrlist4 = spec.typedef("attrlist4", VarOpaque())
bitmap4 = spec.typedef("bitmap4", VarArray(UInt))
changeid4 = spec.typedef("changeid4", UHyper)
clientid4 = spec.typedef("clientid4", UHyper)
count4 = spec.typedef("count4", UInt)
length4 = spec.typedef("length4", UHyper)
mode4 = spec.typedef("mode4", UInt)
nfs_cookie4 = spec.typedef("nfs_cookie4", UHyper)
nfs_fh4 = spec.typedef("nfs_fh4", VarOpaque(K.NFS4_FHSIZE))
offset4 = spec.typedef("offset4", UHyper)
qop4 = spec.typedef("qop4", UInt)
sec_oid4 = spec.typedef("sec_oid4", VarOpaque())
sequenceid4 = spec.typedef("sequenceid4", UInt)
seqid4 = spec.typedef("seqid4", UInt)
sessionid4 = spec.typedef("sessionid4", Opaque(K.NFS4_SESSIONID_SIZE))
slotid4 = spec.typedef("slotid4", UInt)
utf8string = spec.typedef("utf8string", VarOpaque())
utf8str_cis = spec.typedef("utf8str_cis", utf8string)
utf8str_cs = spec.typedef("utf8str_cs", utf8string)
utf8str_mixed = spec.typedef("utf8str_mixed", utf8string)
component4 = spec.typedef("component4", utf8str_cs)
linktext4 = spec.typedef("linktext4", VarOpaque())
ascii_REQUIRED4 = spec.typedef("ascii_REQUIRED4", utf8string)
pathname4 = spec.typedef("pathname4", VarArray(component4))
verifier4 = spec.typedef("verifier4", Opaque(K.NFS4_VERIFIER_SIZE))
secret4 = spec.typedef("secret4", String())
policy4 = spec.typedef("policy4", UInt)

# ---------------------------------------------------------------------------------- time
nfstime4 = spec.struct("nfstime4", [
    ("seconds", Hyper),
    ("nseconds", UInt),
])

time_how4 = spec.enum("time_how4", [
    ("SET_TO_SERVER_TIME4", 0),
    ("SET_TO_CLIENT_TIME4", 1),
])

settime4 = spec.union("settime4", time_how4, {
    K.SET_TO_CLIENT_TIME4: ("time", nfstime4),
}, default=Void)

nfs_lease4 = spec.typedef("nfs_lease4", UInt)

# ------------------------------------------------------------------- file system locations
fsid4 = spec.struct("fsid4", [
    ("major", UHyper),
    ("minor", UHyper),
])

change_policy4 = spec.struct("change_policy4", [
    ("cp_major", UHyper),
    ("cp_minor", UHyper),
])

fs_location4 = spec.struct("fs_location4", [
    ("server", VarArray(utf8str_cis)),
    ("rootpath", pathname4),
])

fs_locations4 = spec.struct("fs_locations4", [
    ("fs_root", pathname4),
    ("locations", VarArray(fs_location4)),
])

# -------------------------------------------------------------------------------- ACLs
_consts(
    ACL4_SUPPORT_ALLOW_ACL=0x00000001,
    ACL4_SUPPORT_DENY_ACL=0x00000002,
    ACL4_SUPPORT_AUDIT_ACL=0x00000004,
    ACL4_SUPPORT_ALARM_ACL=0x00000008,
)

acetype4 = spec.typedef("acetype4", UInt)
_consts(
    ACE4_ACCESS_ALLOWED_ACE_TYPE=0x00000000,
    ACE4_ACCESS_DENIED_ACE_TYPE=0x00000001,
    ACE4_SYSTEM_AUDIT_ACE_TYPE=0x00000002,
    ACE4_SYSTEM_ALARM_ACE_TYPE=0x00000003,
)

aceflag4 = spec.typedef("aceflag4", UInt)
_consts(
    ACE4_FILE_INHERIT_ACE=0x00000001,
    ACE4_DIRECTORY_INHERIT_ACE=0x00000002,
    ACE4_NO_PROPAGATE_INHERIT_ACE=0x00000004,
    ACE4_INHERIT_ONLY_ACE=0x00000008,
    ACE4_SUCCESSFUL_ACCESS_ACE_FLAG=0x00000010,
    ACE4_FAILED_ACCESS_ACE_FLAG=0x00000020,
    ACE4_IDENTIFIER_GROUP=0x00000040,
    ACE4_INHERITED_ACE=0x00000080,
)

acemask4 = spec.typedef("acemask4", UInt)
_consts(
    ACE4_READ_DATA=0x00000001,
    ACE4_LIST_DIRECTORY=0x00000001,
    ACE4_WRITE_DATA=0x00000002,
    ACE4_ADD_FILE=0x00000002,
    ACE4_APPEND_DATA=0x00000004,
    ACE4_ADD_SUBDIRECTORY=0x00000004,
    ACE4_READ_NAMED_ATTRS=0x00000008,
    ACE4_WRITE_NAMED_ATTRS=0x00000010,
    ACE4_EXECUTE=0x00000020,
    ACE4_DELETE_CHILD=0x00000040,
    ACE4_READ_ATTRIBUTES=0x00000080,
    ACE4_WRITE_ATTRIBUTES=0x00000100,
    ACE4_WRITE_RETENTION=0x00000200,
    ACE4_WRITE_RETENTION_HOLD=0x00000400,
    ACE4_DELETE=0x00010000,
    ACE4_READ_ACL=0x00020000,
    ACE4_WRITE_ACL=0x00040000,
    ACE4_WRITE_OWNER=0x00080000,
    ACE4_SYNCHRONIZE=0x00100000,
    ACE4_GENERIC_READ=0x00120081,
    ACE4_GENERIC_WRITE=0x00160106,
    ACE4_GENERIC_EXECUTE=0x001200A0,
)

nfsace4 = spec.struct("nfsace4", [
    ("type", acetype4),
    ("flag", aceflag4),
    ("access_mask", acemask4),
    ("who", utf8str_mixed),
])

aclflag4 = spec.typedef("aclflag4", UInt)
_consts(
    ACL4_AUTO_INHERIT=0x00000001,
    ACL4_PROTECTED=0x00000002,
    ACL4_DEFAULTED=0x00000004,
)

nfsacl41 = spec.struct("nfsacl41", [
    ("na41_flag", aclflag4),
    ("na41_aces", VarArray(nfsace4)),
])

# ---------------------------------------------------------------------- mode, devices, ...
_consts(
    MODE4_SUID=0x800,
    MODE4_SGID=0x400,
    MODE4_SVTX=0x200,
    MODE4_RUSR=0x100,
    MODE4_WUSR=0x080,
    MODE4_XUSR=0x040,
    MODE4_RGRP=0x020,
    MODE4_WGRP=0x010,
    MODE4_XGRP=0x008,
    MODE4_ROTH=0x004,
    MODE4_WOTH=0x002,
    MODE4_XOTH=0x001,
)

mode_masked4 = spec.struct("mode_masked4", [
    ("mm_value_to_set", mode4),
    ("mm_mask_bits", mode4),
])

specdata4 = spec.struct("specdata4", [
    ("specdata1", UInt),  # major device number
    ("specdata2", UInt),  # minor device number
])

_consts(
    FH4_PERSISTENT=0x00000000,
    FH4_NOEXPIRE_WITH_OPEN=0x00000001,
    FH4_VOLATILE_ANY=0x00000002,
    FH4_VOL_MIGRATION=0x00000004,
    FH4_VOL_RENAME=0x00000008,
)

netaddr4 = spec.struct("netaddr4", [
    ("na_r_netid", String()),  # network id (RFC 1833 rpcb)
    ("na_r_addr", String()),  # universal address
])

nfs_impl_id4 = spec.struct("nfs_impl_id4", [
    ("nii_domain", utf8str_cis),
    ("nii_name", utf8str_cs),
    ("nii_date", nfstime4),
])

stateid4 = spec.struct("stateid4", [
    ("seqid", UInt),
    ("other", Opaque(K.NFS4_OTHER_SIZE)),
])

# --------------------------------------------------------------------------------- pNFS
layouttype4 = spec.enum("layouttype4", [
    ("LAYOUT4_NFSV4_1_FILES", 0x1),
    ("LAYOUT4_OSD2_OBJECTS", 0x2),
    ("LAYOUT4_BLOCK_VOLUME", 0x3),
    ("LAYOUT4_FLEX_FILES", 0x4),  # RFC 8435
    ("LAYOUT4_SCSI", 0x5),  # RFC 8154
])

layout_content4 = spec.struct("layout_content4", [
    ("loc_type", layouttype4),
    ("loc_body", VarOpaque()),
])

layouthint4 = spec.struct("layouthint4", [
    ("loh_type", layouttype4),
    ("loh_body", VarOpaque()),
])

layoutiomode4 = spec.enum("layoutiomode4", [
    ("LAYOUTIOMODE4_READ", 1),
    ("LAYOUTIOMODE4_RW", 2),
    ("LAYOUTIOMODE4_ANY", 3),
])

layout4 = spec.struct("layout4", [
    ("lo_offset", offset4),
    ("lo_length", length4),
    ("lo_iomode", layoutiomode4),
    ("lo_content", layout_content4),
])

_consts(NFS4_DEVICEID4_SIZE=16)
deviceid4 = spec.typedef("deviceid4", Opaque(K.NFS4_DEVICEID4_SIZE))

device_addr4 = spec.struct("device_addr4", [
    ("da_layout_type", layouttype4),
    ("da_addr_body", VarOpaque()),
])

layoutupdate4 = spec.struct("layoutupdate4", [
    ("lou_type", layouttype4),
    ("lou_body", VarOpaque()),
])

_consts(
    LAYOUT4_RET_REC_FILE=1,
    LAYOUT4_RET_REC_FSID=2,
    LAYOUT4_RET_REC_ALL=3,
)

layoutreturn_type4 = spec.enum("layoutreturn_type4", [
    ("LAYOUTRETURN4_FILE", K.LAYOUT4_RET_REC_FILE),
    ("LAYOUTRETURN4_FSID", K.LAYOUT4_RET_REC_FSID),
    ("LAYOUTRETURN4_ALL", K.LAYOUT4_RET_REC_ALL),
])

layoutreturn_file4 = spec.struct("layoutreturn_file4", [
    ("lrf_offset", offset4),
    ("lrf_length", length4),
    ("lrf_stateid", stateid4),
    ("lrf_body", VarOpaque()),  # layout type specific
])

layoutreturn4 = spec.union("layoutreturn4", layoutreturn_type4, {
    K.LAYOUTRETURN4_FILE: ("lr_layout", layoutreturn_file4),
}, default=Void)

fs4_status_type = spec.enum("fs4_status_type", [
    ("STATUS4_FIXED", 1),
    ("STATUS4_UPDATED", 2),
    ("STATUS4_VERSIONED", 3),
    ("STATUS4_WRITABLE", 4),
    ("STATUS4_REFERRAL", 5),
])

fs4_status = spec.struct("fs4_status", [
    ("fss_absent", Bool),
    ("fss_type", fs4_status_type),
    ("fss_source", utf8str_cs),
    ("fss_current", utf8str_cs),
    ("fss_age", Int),
    ("fss_version", nfstime4),
])

_consts(
    TH4_READ_SIZE=0,
    TH4_WRITE_SIZE=1,
    TH4_READ_IOSIZE=2,
    TH4_WRITE_IOSIZE=3,
)
threshold4_read_size = spec.typedef("threshold4_read_size", length4)
threshold4_write_size = spec.typedef("threshold4_write_size", length4)
threshold4_read_iosize = spec.typedef("threshold4_read_iosize", length4)
threshold4_write_iosize = spec.typedef("threshold4_write_iosize", length4)

threshold_item4 = spec.struct("threshold_item4", [
    ("thi_layout_type", layouttype4),
    ("thi_hintset", bitmap4),
    ("thi_hintlist", VarOpaque()),
])

mdsthreshold4 = spec.struct("mdsthreshold4", [
    ("mth_hints", VarArray(threshold_item4)),
])

# ---------------------------------------------------------------------------- retention
_consts(RET4_DURATION_INFINITE=0xFFFFFFFFFFFFFFFF)

retention_get4 = spec.struct("retention_get4", [
    ("rg_duration", UHyper),
    ("rg_begin_time", VarArray(nfstime4, 1)),
])

retention_set4 = spec.struct("retention_set4", [
    ("rs_enable", Bool),
    ("rs_duration", VarArray(UHyper, 1)),
])

_consts(
    FSCHARSET_CAP4_CONTAINS_NON_UTF8=0x1,
    FSCHARSET_CAP4_ALLOWS_ONLY_UTF8=0x2,
)
fs_charset_cap4 = spec.typedef("fs_charset_cap4", UInt)

# ------------------------------------------------------------------- new to NFSv4.2 (7863)
netloc_type4 = spec.enum("netloc_type4", [
    ("NL4_NAME", 1),
    ("NL4_URL", 2),
    ("NL4_NETADDR", 3),
])

netloc4 = spec.union("netloc4", netloc_type4, {
    K.NL4_NAME: ("nl_name", utf8str_cis),
    K.NL4_URL: ("nl_url", utf8str_cis),
    K.NL4_NETADDR: ("nl_addr", netaddr4),
})

change_attr_type4 = spec.enum("change_attr_type4", [
    ("NFS4_CHANGE_TYPE_IS_MONOTONIC_INCR", 0),
    ("NFS4_CHANGE_TYPE_IS_VERSION_COUNTER", 1),
    ("NFS4_CHANGE_TYPE_IS_VERSION_COUNTER_NOPNFS", 2),
    ("NFS4_CHANGE_TYPE_IS_TIME_METADATA", 3),
    ("NFS4_CHANGE_TYPE_IS_UNDEFINED", 4),
])

labelformat_spec4 = spec.struct("labelformat_spec4", [
    ("lfs_lfs", policy4),
    ("lfs_pi", policy4),
])

sec_label4 = spec.struct("sec_label4", [
    ("slai_lfs", labelformat_spec4),
    ("slai_data", VarOpaque()),
])

copy_from_auth_priv = spec.struct("copy_from_auth_priv", [
    ("cfap_shared_secret", secret4),
    ("cfap_destination", netloc4),
    ("cfap_username", utf8str_mixed),
])

copy_to_auth_priv = spec.struct("copy_to_auth_priv", [
    ("ctap_shared_secret", secret4),
    ("ctap_source", VarArray(netloc4)),
    ("ctap_username", utf8str_mixed),
])

copy_confirm_auth_priv = spec.struct("copy_confirm_auth_priv", [
    ("ccap_shared_secret_mic", VarOpaque()),
    ("ccap_username", utf8str_mixed),
])

app_data_block4 = spec.struct("app_data_block4", [
    ("adb_offset", offset4),
    ("adb_block_size", length4),
    ("adb_block_count", length4),
    ("adb_reloff_blocknum", length4),
    ("adb_block_num", count4),
    ("adb_reloff_pattern", length4),
    ("adb_pattern", VarOpaque(view=True)),
])

data4 = spec.struct("data4", [
    ("d_offset", offset4),
    ("d_data", VarOpaque(view=True)),
])

data_info4 = spec.struct("data_info4", [
    ("di_offset", offset4),
    ("di_length", length4),
])

data_content4 = spec.enum("data_content4", [
    ("NFS4_CONTENT_DATA", 0),
    ("NFS4_CONTENT_HOLE", 1),
])

stable_how4 = spec.enum("stable_how4", [
    ("UNSTABLE4", 0),
    ("DATA_SYNC4", 1),
    ("FILE_SYNC4", 2),
])

write_response4 = spec.struct("write_response4", [
    ("wr_callback_id", VarArray(stateid4, 1)),
    ("wr_count", length4),
    ("wr_committed", stable_how4),
    ("wr_writeverf", verifier4),
])

# RFC 8275
mode_umask4 = spec.struct("mode_umask4", [
    ("mu_mode", mode4),
    ("mu_umask", mode4),
])

# RFC 8276
xattrkey4 = spec.typedef("xattrkey4", component4)
xattrvalue4 = spec.typedef("xattrvalue4", VarOpaque())

# ------------------------------------------------------------------ owners, client ids, SSV
change_info4 = spec.struct("change_info4", [
    ("atomic", Bool),
    ("before", changeid4),
    ("after", changeid4),
])

clientaddr4 = spec.typedef("clientaddr4", netaddr4)

cb_client4 = spec.struct("cb_client4", [
    ("cb_program", UInt),
    ("cb_location", netaddr4),
])

nfs_client_id4 = spec.struct("nfs_client_id4", [  # NFSv4.0
    ("verifier", verifier4),
    ("id", VarOpaque(K.NFS4_OPAQUE_LIMIT)),
])

client_owner4 = spec.struct("client_owner4", [  # NFSv4.1
    ("co_verifier", verifier4),
    ("co_ownerid", VarOpaque(K.NFS4_OPAQUE_LIMIT)),
])

server_owner4 = spec.struct("server_owner4", [
    ("so_minor_id", UHyper),
    ("so_major_id", VarOpaque(K.NFS4_OPAQUE_LIMIT)),
])

state_owner4 = spec.struct("state_owner4", [
    ("clientid", clientid4),
    ("owner", VarOpaque(K.NFS4_OPAQUE_LIMIT)),
])
open_owner4 = spec.typedef("open_owner4", state_owner4)
lock_owner4 = spec.typedef("lock_owner4", state_owner4)

nfs_lock_type4 = spec.enum("nfs_lock_type4", [
    ("READ_LT", 1),
    ("WRITE_LT", 2),
    ("READW_LT", 3),  # blocking read
    ("WRITEW_LT", 4),  # blocking write
])

ssv_subkey4 = spec.enum("ssv_subkey4", [
    ("SSV4_SUBKEY_MIC_I2T", 1),
    ("SSV4_SUBKEY_MIC_T2I", 2),
    ("SSV4_SUBKEY_SEAL_I2T", 3),
    ("SSV4_SUBKEY_SEAL_T2I", 4),
])

ssv_mic_plain_tkn4 = spec.struct("ssv_mic_plain_tkn4", [
    ("smpt_ssv_seq", UInt),
    ("smpt_orig_plain", VarOpaque()),
])

ssv_mic_tkn4 = spec.struct("ssv_mic_tkn4", [
    ("smt_ssv_seq", UInt),
    ("smt_hmac", VarOpaque()),
])

ssv_seal_plain_tkn4 = spec.struct("ssv_seal_plain_tkn4", [
    ("sspt_confounder", VarOpaque()),
    ("sspt_ssv_seq", UInt),
    ("sspt_orig_plain", VarOpaque()),
    ("sspt_pad", VarOpaque()),
])

ssv_seal_cipher_tkn4 = spec.struct("ssv_seal_cipher_tkn4", [
    ("ssct_ssv_seq", UInt),
    ("ssct_iv", VarOpaque()),
    ("ssct_encr_data", VarOpaque()),
    ("ssct_hmac", VarOpaque()),
])

# ------------------------------------------------------------------------ fs_locations_info
fs_locations_server4 = spec.struct("fs_locations_server4", [
    ("fls_currency", Int),
    ("fls_info", VarOpaque()),
    ("fls_server", utf8str_cis),
])

_consts(
    # byte indices within fls_info
    FSLI4BX_GFLAGS=0,
    FSLI4BX_TFLAGS=1,
    FSLI4BX_CLSIMUL=2,
    FSLI4BX_CLHANDLE=3,
    FSLI4BX_CLFILEID=4,
    FSLI4BX_CLWRITEVER=5,
    FSLI4BX_CLCHANGE=6,
    FSLI4BX_CLREADDIR=7,
    FSLI4BX_READRANK=8,
    FSLI4BX_WRITERANK=9,
    FSLI4BX_READORDER=10,
    FSLI4BX_WRITEORDER=11,
    # general flag byte
    FSLI4GF_WRITABLE=0x01,
    FSLI4GF_CUR_REQ=0x02,
    FSLI4GF_ABSENT=0x04,
    FSLI4GF_GOING=0x08,
    FSLI4GF_SPLIT=0x10,
    # transport flag byte
    FSLI4TF_RDMA=0x01,
)

fs_locations_item4 = spec.struct("fs_locations_item4", [
    ("fli_entries", VarArray(fs_locations_server4)),
    ("fli_rootpath", pathname4),
])

fs_locations_info4 = spec.struct("fs_locations_info4", [
    ("fli_flags", UInt),
    ("fli_valid_for", Int),
    ("fli_fs_root", pathname4),
    ("fli_items", VarArray(fs_locations_item4)),
])

_consts(FSLI4IF_VAR_SUB=0x00000001)

# ------------------------------------------------------------- file layout (LAYOUT4_NFSV4_1_FILES)
_consts(
    NFL4_UFLG_MASK=0x0000003F,
    NFL4_UFLG_DENSE=0x00000001,
    NFL4_UFLG_COMMIT_THRU_MDS=0x00000002,
    NFL42_UFLG_IO_ADVISE_THRU_MDS=0x00000004,
    NFL4_UFLG_STRIPE_UNIT_SIZE_MASK=0xFFFFFFC0,
)
nfl_util4 = spec.typedef("nfl_util4", UInt)

filelayout_hint_care4 = spec.enum("filelayout_hint_care4", [
    ("NFLH4_CARE_DENSE", K.NFL4_UFLG_DENSE),
    ("NFLH4_CARE_COMMIT_THRU_MDS", K.NFL4_UFLG_COMMIT_THRU_MDS),
    ("NFL42_CARE_IO_ADVISE_THRU_MDS", K.NFL42_UFLG_IO_ADVISE_THRU_MDS),
    ("NFLH4_CARE_STRIPE_UNIT_SIZE", 0x00000040),
    ("NFLH4_CARE_STRIPE_COUNT", 0x00000080),
])

nfsv4_1_file_layouthint4 = spec.struct("nfsv4_1_file_layouthint4", [  # in loh_body
    ("nflh_care", UInt),
    ("nflh_util", nfl_util4),
    ("nflh_stripe_count", count4),
])

multipath_list4 = spec.typedef("multipath_list4", VarArray(netaddr4))

nfsv4_1_file_layout_ds_addr4 = spec.struct("nfsv4_1_file_layout_ds_addr4", [  # in da_addr_body
    ("nflda_stripe_indices", VarArray(UInt)),
    ("nflda_multipath_ds_list", VarArray(multipath_list4)),
])

nfsv4_1_file_layout4 = spec.struct("nfsv4_1_file_layout4", [  # in loc_body
    ("nfl_deviceid", deviceid4),
    ("nfl_util", nfl_util4),
    ("nfl_first_stripe_index", UInt),
    ("nfl_pattern_offset", offset4),
    ("nfl_fh_list", VarArray(nfs_fh4)),
])

# ------------------------------------------------------------------------------- attributes
# (number, name, type): each row declares `fattr4_<name>` and `FATTR4_<NAME>`.
_ATTRIBUTES = [
    # REQUIRED (RFC 7530 / 8881)
    (0, "supported_attrs", bitmap4),
    (1, "type", nfs_ftype4),
    (2, "fh_expire_type", UInt),
    (3, "change", changeid4),
    (4, "size", UHyper),
    (5, "link_support", Bool),
    (6, "symlink_support", Bool),
    (7, "named_attr", Bool),
    (8, "fsid", fsid4),
    (9, "unique_handles", Bool),
    (10, "lease_time", nfs_lease4),
    (11, "rdattr_error", nfsstat4),
    (19, "filehandle", nfs_fh4),
    (75, "suppattr_exclcreat", bitmap4),  # 4.1
    # RECOMMENDED
    (12, "acl", VarArray(nfsace4)),
    (13, "aclsupport", UInt),
    (14, "archive", Bool),
    (15, "cansettime", Bool),
    (16, "case_insensitive", Bool),
    (17, "case_preserving", Bool),
    (18, "chown_restricted", Bool),
    (20, "fileid", UHyper),
    (21, "files_avail", UHyper),
    (22, "files_free", UHyper),
    (23, "files_total", UHyper),
    (24, "fs_locations", fs_locations4),
    (25, "hidden", Bool),
    (26, "homogeneous", Bool),
    (27, "maxfilesize", UHyper),
    (28, "maxlink", UInt),
    (29, "maxname", UInt),
    (30, "maxread", UHyper),
    (31, "maxwrite", UHyper),
    (32, "mimetype", ascii_REQUIRED4),
    (33, "mode", mode4),
    (34, "no_trunc", Bool),
    (35, "numlinks", UInt),
    (36, "owner", utf8str_mixed),
    (37, "owner_group", utf8str_mixed),
    (38, "quota_avail_hard", UHyper),
    (39, "quota_avail_soft", UHyper),
    (40, "quota_used", UHyper),
    (41, "rawdev", specdata4),
    (42, "space_avail", UHyper),
    (43, "space_free", length4),
    (44, "space_total", UHyper),
    (45, "space_used", UHyper),
    (46, "system", Bool),
    (47, "time_access", nfstime4),
    (48, "time_access_set", settime4),
    (49, "time_backup", nfstime4),
    (50, "time_create", nfstime4),
    (51, "time_delta", nfstime4),
    (52, "time_metadata", nfstime4),
    (53, "time_modify", nfstime4),
    (54, "time_modify_set", settime4),
    (55, "mounted_on_fileid", UHyper),
    # new to NFSv4.1
    (56, "dir_notif_delay", nfstime4),
    (57, "dirent_notif_delay", nfstime4),
    (58, "dacl", nfsacl41),
    (59, "sacl", nfsacl41),
    (60, "change_policy", change_policy4),
    (61, "fs_status", fs4_status),
    (62, "fs_layout_types", VarArray(layouttype4)),
    (63, "layout_hint", layouthint4),
    (64, "layout_types", VarArray(layouttype4)),
    (65, "layout_blksize", UInt),
    (66, "layout_alignment", UInt),
    (67, "fs_locations_info", fs_locations_info4),
    (68, "mdsthreshold", mdsthreshold4),
    (69, "retention_get", retention_get4),
    (70, "retention_set", retention_set4),
    (71, "retentevt_get", retention_get4),
    (72, "retentevt_set", retention_set4),
    (73, "retention_hold", UHyper),
    (74, "mode_set_masked", mode_masked4),
    (76, "fs_charset_cap", fs_charset_cap4),
    # new to NFSv4.2
    (77, "clone_blksize", UInt),
    (78, "space_freed", UHyper),
    (79, "change_attr_type", change_attr_type4),
    (80, "sec_label", sec_label4),
    (81, "mode_umask", mode_umask4),  # RFC 8275
    (82, "xattr_support", Bool),  # RFC 8276
]

_attr_types = {}
for _num, _name, _type in _ATTRIBUTES:
    _attr_types[_num] = (_name, spec.typedef(f"fattr4_{_name}", _type))
    spec.const(f"FATTR4_{_name.upper()}", _num)
del _num, _name, _type

fattr4 = spec.struct("fattr4", [
    ("attrmask", bitmap4),
    ("attr_vals", attrlist4),
])

# ------------------------------------------------------------------------ operation numbers
nfs_opnum4 = spec.enum("nfs_opnum4", [
    ("OP_ACCESS", 3),
    ("OP_CLOSE", 4),
    ("OP_COMMIT", 5),
    ("OP_CREATE", 6),
    ("OP_DELEGPURGE", 7),
    ("OP_DELEGRETURN", 8),
    ("OP_GETATTR", 9),
    ("OP_GETFH", 10),
    ("OP_LINK", 11),
    ("OP_LOCK", 12),
    ("OP_LOCKT", 13),
    ("OP_LOCKU", 14),
    ("OP_LOOKUP", 15),
    ("OP_LOOKUPP", 16),
    ("OP_NVERIFY", 17),
    ("OP_OPEN", 18),
    ("OP_OPENATTR", 19),
    ("OP_OPEN_CONFIRM", 20),  # 4.0 only
    ("OP_OPEN_DOWNGRADE", 21),
    ("OP_PUTFH", 22),
    ("OP_PUTPUBFH", 23),
    ("OP_PUTROOTFH", 24),
    ("OP_READ", 25),
    ("OP_READDIR", 26),
    ("OP_READLINK", 27),
    ("OP_REMOVE", 28),
    ("OP_RENAME", 29),
    ("OP_RENEW", 30),  # 4.0 only
    ("OP_RESTOREFH", 31),
    ("OP_SAVEFH", 32),
    ("OP_SECINFO", 33),
    ("OP_SETATTR", 34),
    ("OP_SETCLIENTID", 35),  # 4.0 only
    ("OP_SETCLIENTID_CONFIRM", 36),  # 4.0 only
    ("OP_VERIFY", 37),
    ("OP_WRITE", 38),
    ("OP_RELEASE_LOCKOWNER", 39),  # 4.0 only
    # NFSv4.1
    ("OP_BACKCHANNEL_CTL", 40),
    ("OP_BIND_CONN_TO_SESSION", 41),
    ("OP_EXCHANGE_ID", 42),
    ("OP_CREATE_SESSION", 43),
    ("OP_DESTROY_SESSION", 44),
    ("OP_FREE_STATEID", 45),
    ("OP_GET_DIR_DELEGATION", 46),
    ("OP_GETDEVICEINFO", 47),
    ("OP_GETDEVICELIST", 48),
    ("OP_LAYOUTCOMMIT", 49),
    ("OP_LAYOUTGET", 50),
    ("OP_LAYOUTRETURN", 51),
    ("OP_SECINFO_NO_NAME", 52),
    ("OP_SEQUENCE", 53),
    ("OP_SET_SSV", 54),
    ("OP_TEST_STATEID", 55),
    ("OP_WANT_DELEGATION", 56),
    ("OP_DESTROY_CLIENTID", 57),
    ("OP_RECLAIM_COMPLETE", 58),
    # NFSv4.2
    ("OP_ALLOCATE", 59),
    ("OP_COPY", 60),
    ("OP_COPY_NOTIFY", 61),
    ("OP_DEALLOCATE", 62),
    ("OP_IO_ADVISE", 63),
    ("OP_LAYOUTERROR", 64),
    ("OP_LAYOUTSTATS", 65),
    ("OP_OFFLOAD_CANCEL", 66),
    ("OP_OFFLOAD_STATUS", 67),
    ("OP_READ_PLUS", 68),
    ("OP_SEEK", 69),
    ("OP_WRITE_SAME", 70),
    ("OP_CLONE", 71),
    # RFC 8276
    ("OP_GETXATTR", 72),
    ("OP_SETXATTR", 73),
    ("OP_LISTXATTRS", 74),
    ("OP_REMOVEXATTR", 75),
    ("OP_ILLEGAL", 10044),
])

# ============================================================================= operations
# ACCESS
_consts(
    ACCESS4_READ=0x00000001,
    ACCESS4_LOOKUP=0x00000002,
    ACCESS4_MODIFY=0x00000004,
    ACCESS4_EXTEND=0x00000008,
    ACCESS4_DELETE=0x00000010,
    ACCESS4_EXECUTE=0x00000020,
    ACCESS4_XAREAD=0x00000040,  # RFC 8276
    ACCESS4_XAWRITE=0x00000080,  # RFC 8276
    ACCESS4_XALIST=0x00000100,  # RFC 8276
)

ACCESS4args = spec.struct("ACCESS4args", [
    ("access", UInt),
])
ACCESS4resok = spec.struct("ACCESS4resok", [
    ("supported", UInt),
    ("access", UInt),
])
ACCESS4res = _res("ACCESS4res", ("resok4", ACCESS4resok))

# CLONE (4.2)
CLONE4args = spec.struct("CLONE4args", [  # SAVED_FH: source, CURRENT_FH: destination
    ("cl_src_stateid", stateid4),
    ("cl_dst_stateid", stateid4),
    ("cl_src_offset", offset4),
    ("cl_dst_offset", offset4),
    ("cl_count", length4),
])
CLONE4res = _status("CLONE4res", "cl_status")

# CLOSE
CLOSE4args = spec.struct("CLOSE4args", [
    ("seqid", seqid4),
    ("open_stateid", stateid4),
])
CLOSE4res = _res("CLOSE4res", ("open_stateid", stateid4))

# COMMIT
COMMIT4args = spec.struct("COMMIT4args", [
    ("offset", offset4),
    ("count", count4),
])
COMMIT4resok = spec.struct("COMMIT4resok", [
    ("writeverf", verifier4),
])
COMMIT4res = _res("COMMIT4res", ("resok4", COMMIT4resok))

# CREATE
createtype4 = spec.union("createtype4", nfs_ftype4, {
    K.NF4LNK: ("linkdata", linktext4),
    (K.NF4BLK, K.NF4CHR): ("devdata", specdata4),
    (K.NF4SOCK, K.NF4FIFO, K.NF4DIR): Void,
}, default=Void)  # other types: the server answers NFS4ERR_BADTYPE

CREATE4args = spec.struct("CREATE4args", [
    ("objtype", createtype4),
    ("objname", component4),
    ("createattrs", fattr4),
])
CREATE4resok = spec.struct("CREATE4resok", [
    ("cinfo", change_info4),
    ("attrset", bitmap4),
])
CREATE4res = _res("CREATE4res", ("resok4", CREATE4resok))

# DELEGPURGE, DELEGRETURN
DELEGPURGE4args = spec.struct("DELEGPURGE4args", [
    ("clientid", clientid4),
])
DELEGPURGE4res = _status("DELEGPURGE4res")

DELEGRETURN4args = spec.struct("DELEGRETURN4args", [
    ("deleg_stateid", stateid4),
])
DELEGRETURN4res = _status("DELEGRETURN4res")

# GETATTR, GETFH
GETATTR4args = spec.struct("GETATTR4args", [
    ("attr_request", bitmap4),
])
GETATTR4resok = spec.struct("GETATTR4resok", [
    ("obj_attributes", fattr4),
])
GETATTR4res = _res("GETATTR4res", ("resok4", GETATTR4resok))

GETFH4resok = spec.struct("GETFH4resok", [
    ("object", nfs_fh4),
])
GETFH4res = _res("GETFH4res", ("resok4", GETFH4resok))

# LINK
LINK4args = spec.struct("LINK4args", [  # SAVED_FH: source, CURRENT_FH: target directory
    ("newname", component4),
])
LINK4resok = spec.struct("LINK4resok", [
    ("cinfo", change_info4),
])
LINK4res = _res("LINK4res", ("resok4", LINK4resok))

# LOCK, LOCKT, LOCKU
open_to_lock_owner4 = spec.struct("open_to_lock_owner4", [
    ("open_seqid", seqid4),
    ("open_stateid", stateid4),
    ("lock_seqid", seqid4),
    ("lock_owner", lock_owner4),
])

exist_lock_owner4 = spec.struct("exist_lock_owner4", [
    ("lock_stateid", stateid4),
    ("lock_seqid", seqid4),
])

locker4 = spec.union("locker4", Bool, {  # switch (bool new_lock_owner)
    True: ("open_owner", open_to_lock_owner4),
    False: ("lock_owner", exist_lock_owner4),
})

LOCK4args = spec.struct("LOCK4args", [
    ("locktype", nfs_lock_type4),
    ("reclaim", Bool),
    ("offset", offset4),
    ("length", length4),
    ("locker", locker4),
])
LOCK4denied = spec.struct("LOCK4denied", [
    ("offset", offset4),
    ("length", length4),
    ("locktype", nfs_lock_type4),
    ("owner", lock_owner4),
])
LOCK4resok = spec.struct("LOCK4resok", [
    ("lock_stateid", stateid4),
])
LOCK4res = _res("LOCK4res", ("resok4", LOCK4resok), errors={
    K.NFS4ERR_DENIED: ("denied", LOCK4denied),
})

LOCKT4args = spec.struct("LOCKT4args", [
    ("locktype", nfs_lock_type4),
    ("offset", offset4),
    ("length", length4),
    ("owner", lock_owner4),
])
LOCKT4res = spec.union("LOCKT4res", nfsstat4, {
    K.NFS4ERR_DENIED: ("denied", LOCK4denied),
    K.NFS4_OK: Void,
}, default=Void)

LOCKU4args = spec.struct("LOCKU4args", [
    ("locktype", nfs_lock_type4),
    ("seqid", seqid4),
    ("lock_stateid", stateid4),
    ("offset", offset4),
    ("length", length4),
])
LOCKU4res = _res("LOCKU4res", ("lock_stateid", stateid4))

# LOOKUP, LOOKUPP, NVERIFY
LOOKUP4args = spec.struct("LOOKUP4args", [
    ("objname", component4),
])
LOOKUP4res = _status("LOOKUP4res")
LOOKUPP4res = _status("LOOKUPP4res")

NVERIFY4args = spec.struct("NVERIFY4args", [
    ("obj_attributes", fattr4),
])
NVERIFY4res = _status("NVERIFY4res")

# OPEN
createmode4 = spec.enum("createmode4", [
    ("UNCHECKED4", 0),
    ("GUARDED4", 1),
    ("EXCLUSIVE4", 2),  # deprecated in 4.1
    ("EXCLUSIVE4_1", 3),  # 4.1
])

creatverfattr = spec.struct("creatverfattr", [
    ("cva_verf", verifier4),
    ("cva_attrs", fattr4),
])

createhow4 = spec.union("createhow4", createmode4, {
    (K.UNCHECKED4, K.GUARDED4): ("createattrs", fattr4),
    K.EXCLUSIVE4: ("createverf", verifier4),
    K.EXCLUSIVE4_1: ("ch_createboth", creatverfattr),
})

opentype4 = spec.enum("opentype4", [
    ("OPEN4_NOCREATE", 0),
    ("OPEN4_CREATE", 1),
])

openflag4 = spec.union("openflag4", opentype4, {
    K.OPEN4_CREATE: ("how", createhow4),
}, default=Void)

limit_by4 = spec.enum("limit_by4", [
    ("NFS_LIMIT_SIZE", 1),
    ("NFS_LIMIT_BLOCKS", 2),
])

nfs_modified_limit4 = spec.struct("nfs_modified_limit4", [
    ("num_blocks", UInt),
    ("bytes_per_block", UInt),
])

nfs_space_limit4 = spec.union("nfs_space_limit4", limit_by4, {
    K.NFS_LIMIT_SIZE: ("filesize", UHyper),
    K.NFS_LIMIT_BLOCKS: ("mod_blocks", nfs_modified_limit4),
})

_consts(
    OPEN4_SHARE_ACCESS_READ=0x00000001,
    OPEN4_SHARE_ACCESS_WRITE=0x00000002,
    OPEN4_SHARE_ACCESS_BOTH=0x00000003,
    OPEN4_SHARE_DENY_NONE=0x00000000,
    OPEN4_SHARE_DENY_READ=0x00000001,
    OPEN4_SHARE_DENY_WRITE=0x00000002,
    OPEN4_SHARE_DENY_BOTH=0x00000003,
    # 4.1: delegation wishes in share_access
    OPEN4_SHARE_ACCESS_WANT_DELEG_MASK=0xFF00,
    OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE=0x0000,
    OPEN4_SHARE_ACCESS_WANT_READ_DELEG=0x0100,
    OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG=0x0200,
    OPEN4_SHARE_ACCESS_WANT_ANY_DELEG=0x0300,
    OPEN4_SHARE_ACCESS_WANT_NO_DELEG=0x0400,
    OPEN4_SHARE_ACCESS_WANT_CANCEL=0x0500,
    OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL=0x10000,
    OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED=0x20000,
)

open_delegation_type4 = spec.enum("open_delegation_type4", [
    ("OPEN_DELEGATE_NONE", 0),
    ("OPEN_DELEGATE_READ", 1),
    ("OPEN_DELEGATE_WRITE", 2),
    ("OPEN_DELEGATE_NONE_EXT", 3),  # 4.1
])

open_claim_type4 = spec.enum("open_claim_type4", [
    ("CLAIM_NULL", 0),
    ("CLAIM_PREVIOUS", 1),
    ("CLAIM_DELEGATE_CUR", 2),
    ("CLAIM_DELEGATE_PREV", 3),
    ("CLAIM_FH", 4),  # 4.1
    ("CLAIM_DELEG_CUR_FH", 5),  # 4.1
    ("CLAIM_DELEG_PREV_FH", 6),  # 4.1
])

open_claim_delegate_cur4 = spec.struct("open_claim_delegate_cur4", [
    ("delegate_stateid", stateid4),
    ("file", component4),
])

open_claim4 = spec.union("open_claim4", open_claim_type4, {
    K.CLAIM_NULL: ("file", component4),  # CURRENT_FH: directory
    K.CLAIM_PREVIOUS: ("delegate_type", open_delegation_type4),  # CURRENT_FH: file
    K.CLAIM_DELEGATE_CUR: ("delegate_cur_info", open_claim_delegate_cur4),  # directory
    K.CLAIM_DELEGATE_PREV: ("file_delegate_prev", component4),  # directory
    K.CLAIM_FH: Void,  # CURRENT_FH: file
    K.CLAIM_DELEG_PREV_FH: Void,  # CURRENT_FH: file
    K.CLAIM_DELEG_CUR_FH: ("oc_delegate_stateid", stateid4),  # CURRENT_FH: file
})

OPEN4args = spec.struct("OPEN4args", [
    ("seqid", seqid4),
    ("share_access", UInt),
    ("share_deny", UInt),
    ("owner", open_owner4),
    ("openhow", openflag4),
    ("claim", open_claim4),
])

open_read_delegation4 = spec.struct("open_read_delegation4", [
    ("stateid", stateid4),
    ("recall", Bool),
    ("permissions", nfsace4),
])

open_write_delegation4 = spec.struct("open_write_delegation4", [
    ("stateid", stateid4),
    ("recall", Bool),
    ("space_limit", nfs_space_limit4),
    ("permissions", nfsace4),
])

why_no_delegation4 = spec.enum("why_no_delegation4", [
    ("WND4_NOT_WANTED", 0),
    ("WND4_CONTENTION", 1),
    ("WND4_RESOURCE", 2),
    ("WND4_NOT_SUPP_FTYPE", 3),
    ("WND4_WRITE_DELEG_NOT_SUPP_FTYPE", 4),
    ("WND4_NOT_SUPP_UPGRADE", 5),
    ("WND4_NOT_SUPP_DOWNGRADE", 6),
    ("WND4_CANCELLED", 7),
    ("WND4_IS_DIR", 8),
])

open_none_delegation4 = spec.union("open_none_delegation4", why_no_delegation4, {
    K.WND4_CONTENTION: ("ond_server_will_push_deleg", Bool),
    K.WND4_RESOURCE: ("ond_server_will_signal_avail", Bool),
}, default=Void)

open_delegation4 = spec.union("open_delegation4", open_delegation_type4, {
    K.OPEN_DELEGATE_NONE: Void,
    K.OPEN_DELEGATE_READ: ("read", open_read_delegation4),
    K.OPEN_DELEGATE_WRITE: ("write", open_write_delegation4),
    K.OPEN_DELEGATE_NONE_EXT: ("od_whynone", open_none_delegation4),
})

_consts(
    OPEN4_RESULT_CONFIRM=0x00000002,
    OPEN4_RESULT_LOCKTYPE_POSIX=0x00000004,
    OPEN4_RESULT_PRESERVE_UNLINKED=0x00000008,
    OPEN4_RESULT_MAY_NOTIFY_LOCK=0x00000020,
)

OPEN4resok = spec.struct("OPEN4resok", [
    ("stateid", stateid4),
    ("cinfo", change_info4),
    ("rflags", UInt),
    ("attrset", bitmap4),
    ("delegation", open_delegation4),
])
OPEN4res = _res("OPEN4res", ("resok4", OPEN4resok))

# OPENATTR, OPEN_CONFIRM (4.0), OPEN_DOWNGRADE
OPENATTR4args = spec.struct("OPENATTR4args", [
    ("createdir", Bool),
])
OPENATTR4res = _status("OPENATTR4res")

OPEN_CONFIRM4args = spec.struct("OPEN_CONFIRM4args", [
    ("open_stateid", stateid4),
    ("seqid", seqid4),
])
OPEN_CONFIRM4resok = spec.struct("OPEN_CONFIRM4resok", [
    ("open_stateid", stateid4),
])
OPEN_CONFIRM4res = _res("OPEN_CONFIRM4res", ("resok4", OPEN_CONFIRM4resok))

OPEN_DOWNGRADE4args = spec.struct("OPEN_DOWNGRADE4args", [
    ("open_stateid", stateid4),
    ("seqid", seqid4),
    ("share_access", UInt),
    ("share_deny", UInt),
])
OPEN_DOWNGRADE4resok = spec.struct("OPEN_DOWNGRADE4resok", [
    ("open_stateid", stateid4),
])
OPEN_DOWNGRADE4res = _res("OPEN_DOWNGRADE4res", ("resok4", OPEN_DOWNGRADE4resok))

# PUTFH, PUTPUBFH, PUTROOTFH
PUTFH4args = spec.struct("PUTFH4args", [
    ("object", nfs_fh4),
])
PUTFH4res = _status("PUTFH4res")
PUTPUBFH4res = _status("PUTPUBFH4res")
PUTROOTFH4res = _status("PUTROOTFH4res")

# READ
READ4args = spec.struct("READ4args", [
    ("stateid", stateid4),
    ("offset", offset4),
    ("count", count4),
])
READ4resok = spec.struct("READ4resok", [
    ("eof", Bool),
    ("data", VarOpaque(view=True)),
])
READ4res = _res("READ4res", ("resok4", READ4resok))

# READDIR
READDIR4args = spec.struct("READDIR4args", [
    ("cookie", nfs_cookie4),
    ("cookieverf", verifier4),
    ("dircount", count4),
    ("maxcount", count4),
    ("attr_request", bitmap4),
])

entry4 = spec.struct("entry4", [  # the RFC's `entry4 *nextentry` is dirlist4.entries' chain
    ("cookie", nfs_cookie4),
    ("name", component4),
    ("attrs", fattr4),
])

dirlist4 = spec.struct("dirlist4", [
    ("entries", LinkedList(entry4)),
    ("eof", Bool),
])

READDIR4resok = spec.struct("READDIR4resok", [
    ("cookieverf", verifier4),
    ("reply", dirlist4),
])
READDIR4res = _res("READDIR4res", ("resok4", READDIR4resok))

# READLINK
READLINK4resok = spec.struct("READLINK4resok", [
    ("link", linktext4),
])
READLINK4res = _res("READLINK4res", ("resok4", READLINK4resok))

# REMOVE, RENAME
REMOVE4args = spec.struct("REMOVE4args", [
    ("target", component4),
])
REMOVE4resok = spec.struct("REMOVE4resok", [
    ("cinfo", change_info4),
])
REMOVE4res = _res("REMOVE4res", ("resok4", REMOVE4resok))

RENAME4args = spec.struct("RENAME4args", [  # SAVED_FH: source dir, CURRENT_FH: target dir
    ("oldname", component4),
    ("newname", component4),
])
RENAME4resok = spec.struct("RENAME4resok", [
    ("source_cinfo", change_info4),
    ("target_cinfo", change_info4),
])
RENAME4res = _res("RENAME4res", ("resok4", RENAME4resok))

# RENEW (4.0), RESTOREFH, SAVEFH
RENEW4args = spec.struct("RENEW4args", [
    ("clientid", clientid4),
])
RENEW4res = _status("RENEW4res")
RESTOREFH4res = _status("RESTOREFH4res")
SAVEFH4res = _status("SAVEFH4res")

# SECINFO
SECINFO4args = spec.struct("SECINFO4args", [
    ("name", component4),
])

rpc_gss_svc_t = spec.enum("rpc_gss_svc_t", [  # RFC 2203
    ("RPC_GSS_SVC_NONE", 1),
    ("RPC_GSS_SVC_INTEGRITY", 2),
    ("RPC_GSS_SVC_PRIVACY", 3),
])

rpcsec_gss_info = spec.struct("rpcsec_gss_info", [
    ("oid", sec_oid4),
    ("qop", qop4),
    ("service", rpc_gss_svc_t),
])

_consts(  # RPC authentication flavors (RFC 5531, RFC 2203)
    AUTH_NONE=0,
    AUTH_SYS=1,
    RPCSEC_GSS=6,
)

secinfo4 = spec.union("secinfo4", UInt, {  # switch (uint32_t flavor)
    K.RPCSEC_GSS: ("flavor_info", rpcsec_gss_info),
}, default=Void)

SECINFO4resok = spec.typedef("SECINFO4resok", VarArray(secinfo4))
SECINFO4res = _res("SECINFO4res", ("resok4", SECINFO4resok))

# SETATTR
SETATTR4args = spec.struct("SETATTR4args", [
    ("stateid", stateid4),
    ("obj_attributes", fattr4),
])
SETATTR4res = spec.struct("SETATTR4res", [
    ("status", nfsstat4),
    ("attrsset", bitmap4),
])

# SETCLIENTID, SETCLIENTID_CONFIRM (4.0)
SETCLIENTID4args = spec.struct("SETCLIENTID4args", [
    ("client", nfs_client_id4),
    ("callback", cb_client4),
    ("callback_ident", UInt),
])
SETCLIENTID4resok = spec.struct("SETCLIENTID4resok", [
    ("clientid", clientid4),
    ("setclientid_confirm", verifier4),
])
SETCLIENTID4res = _res("SETCLIENTID4res", ("resok4", SETCLIENTID4resok), errors={
    K.NFS4ERR_CLID_INUSE: ("client_using", clientaddr4),
})

SETCLIENTID_CONFIRM4args = spec.struct("SETCLIENTID_CONFIRM4args", [
    ("clientid", clientid4),
    ("setclientid_confirm", verifier4),
])
SETCLIENTID_CONFIRM4res = _status("SETCLIENTID_CONFIRM4res")

# VERIFY, WRITE
VERIFY4args = spec.struct("VERIFY4args", [
    ("obj_attributes", fattr4),
])
VERIFY4res = _status("VERIFY4res")

WRITE4args = spec.struct("WRITE4args", [
    ("stateid", stateid4),
    ("offset", offset4),
    ("stable", stable_how4),
    ("data", VarOpaque(view=True)),
])
WRITE4resok = spec.struct("WRITE4resok", [
    ("count", count4),
    ("committed", stable_how4),
    ("writeverf", verifier4),
])
WRITE4res = _res("WRITE4res", ("resok4", WRITE4resok))

# RELEASE_LOCKOWNER (4.0), ILLEGAL
RELEASE_LOCKOWNER4args = spec.struct("RELEASE_LOCKOWNER4args", [
    ("lock_owner", lock_owner4),
])
RELEASE_LOCKOWNER4res = _status("RELEASE_LOCKOWNER4res")

ILLEGAL4res = _status("ILLEGAL4res")

# ---------------------------------------------------------------- NFSv4.1: sessions, clients
gsshandle4_t = spec.typedef("gsshandle4_t", VarOpaque())

gss_cb_handles4 = spec.struct("gss_cb_handles4", [
    ("gcbp_service", rpc_gss_svc_t),
    ("gcbp_handle_from_server", gsshandle4_t),
    ("gcbp_handle_from_client", gsshandle4_t),
])

authsys_parms = spec.struct("authsys_parms", [  # RFC 5531 AUTH_SYS credential
    ("stamp", UInt),
    ("machinename", String(255)),
    ("uid", UInt),
    ("gid", UInt),
    ("gids", VarArray(UInt, 16)),
])

callback_sec_parms4 = spec.union("callback_sec_parms4", UInt, {  # switch (uint32_t cb_secflavor)
    K.AUTH_NONE: Void,
    K.AUTH_SYS: ("cbsp_sys_cred", authsys_parms),
    K.RPCSEC_GSS: ("cbsp_gss_handles", gss_cb_handles4),
})

# BACKCHANNEL_CTL
BACKCHANNEL_CTL4args = spec.struct("BACKCHANNEL_CTL4args", [
    ("bca_cb_program", UInt),
    ("bca_sec_parms", VarArray(callback_sec_parms4)),
])
BACKCHANNEL_CTL4res = _status("BACKCHANNEL_CTL4res", "bcr_status")

# BIND_CONN_TO_SESSION
channel_dir_from_client4 = spec.enum("channel_dir_from_client4", [
    ("CDFC4_FORE", 0x1),
    ("CDFC4_BACK", 0x2),
    ("CDFC4_FORE_OR_BOTH", 0x3),
    ("CDFC4_BACK_OR_BOTH", 0x7),
])

BIND_CONN_TO_SESSION4args = spec.struct("BIND_CONN_TO_SESSION4args", [
    ("bctsa_sessid", sessionid4),
    ("bctsa_dir", channel_dir_from_client4),
    ("bctsa_use_conn_in_rdma_mode", Bool),
])

channel_dir_from_server4 = spec.enum("channel_dir_from_server4", [
    ("CDFS4_FORE", 0x1),
    ("CDFS4_BACK", 0x2),
    ("CDFS4_BOTH", 0x3),
])

BIND_CONN_TO_SESSION4resok = spec.struct("BIND_CONN_TO_SESSION4resok", [
    ("bctsr_sessid", sessionid4),
    ("bctsr_dir", channel_dir_from_server4),
    ("bctsr_use_conn_in_rdma_mode", Bool),
])
BIND_CONN_TO_SESSION4res = _res(
    "BIND_CONN_TO_SESSION4res", ("bctsr_resok4", BIND_CONN_TO_SESSION4resok)
)

# EXCHANGE_ID
_consts(
    EXCHGID4_FLAG_SUPP_MOVED_REFER=0x00000001,
    EXCHGID4_FLAG_SUPP_MOVED_MIGR=0x00000002,
    EXCHGID4_FLAG_SUPP_FENCE_OPS=0x00000004,
    EXCHGID4_FLAG_BIND_PRINC_STATEID=0x00000100,
    EXCHGID4_FLAG_USE_NON_PNFS=0x00010000,
    EXCHGID4_FLAG_USE_PNFS_MDS=0x00020000,
    EXCHGID4_FLAG_USE_PNFS_DS=0x00040000,
    EXCHGID4_FLAG_MASK_PNFS=0x00070000,
    EXCHGID4_FLAG_UPD_CONFIRMED_REC_A=0x40000000,
    EXCHGID4_FLAG_CONFIRMED_R=0x80000000,
)

state_protect_ops4 = spec.struct("state_protect_ops4", [
    ("spo_must_enforce", bitmap4),
    ("spo_must_allow", bitmap4),
])

ssv_sp_parms4 = spec.struct("ssv_sp_parms4", [
    ("ssp_ops", state_protect_ops4),
    ("ssp_hash_algs", VarArray(sec_oid4)),
    ("ssp_encr_algs", VarArray(sec_oid4)),
    ("ssp_window", UInt),
    ("ssp_num_gss_handles", UInt),
])

state_protect_how4 = spec.enum("state_protect_how4", [
    ("SP4_NONE", 0),
    ("SP4_MACH_CRED", 1),
    ("SP4_SSV", 2),
])

state_protect4_a = spec.union("state_protect4_a", state_protect_how4, {
    K.SP4_NONE: Void,
    K.SP4_MACH_CRED: ("spa_mach_ops", state_protect_ops4),
    K.SP4_SSV: ("spa_ssv_parms", ssv_sp_parms4),
})

EXCHANGE_ID4args = spec.struct("EXCHANGE_ID4args", [
    ("eia_clientowner", client_owner4),
    ("eia_flags", UInt),
    ("eia_state_protect", state_protect4_a),
    ("eia_client_impl_id", VarArray(nfs_impl_id4, 1)),
])

ssv_prot_info4 = spec.struct("ssv_prot_info4", [
    ("spi_ops", state_protect_ops4),
    ("spi_hash_alg", UInt),
    ("spi_encr_alg", UInt),
    ("spi_ssv_len", UInt),
    ("spi_window", UInt),
    ("spi_handles", VarArray(gsshandle4_t)),
])

state_protect4_r = spec.union("state_protect4_r", state_protect_how4, {
    K.SP4_NONE: Void,
    K.SP4_MACH_CRED: ("spr_mach_ops", state_protect_ops4),
    K.SP4_SSV: ("spr_ssv_info", ssv_prot_info4),
})

EXCHANGE_ID4resok = spec.struct("EXCHANGE_ID4resok", [
    ("eir_clientid", clientid4),
    ("eir_sequenceid", sequenceid4),
    ("eir_flags", UInt),
    ("eir_state_protect", state_protect4_r),
    ("eir_server_owner", server_owner4),
    ("eir_server_scope", VarOpaque(K.NFS4_OPAQUE_LIMIT)),
    ("eir_server_impl_id", VarArray(nfs_impl_id4, 1)),
])
EXCHANGE_ID4res = _res("EXCHANGE_ID4res", ("eir_resok4", EXCHANGE_ID4resok))

# CREATE_SESSION
channel_attrs4 = spec.struct("channel_attrs4", [
    ("ca_headerpadsize", count4),
    ("ca_maxrequestsize", count4),
    ("ca_maxresponsesize", count4),
    ("ca_maxresponsesize_cached", count4),
    ("ca_maxoperations", count4),
    ("ca_maxrequests", count4),
    ("ca_rdma_ird", VarArray(UInt, 1)),
])

_consts(
    CREATE_SESSION4_FLAG_PERSIST=0x00000001,
    CREATE_SESSION4_FLAG_CONN_BACK_CHAN=0x00000002,
    CREATE_SESSION4_FLAG_CONN_RDMA=0x00000004,
)

CREATE_SESSION4args = spec.struct("CREATE_SESSION4args", [
    ("csa_clientid", clientid4),
    ("csa_sequence", sequenceid4),
    ("csa_flags", UInt),
    ("csa_fore_chan_attrs", channel_attrs4),
    ("csa_back_chan_attrs", channel_attrs4),
    ("csa_cb_program", UInt),
    ("csa_sec_parms", VarArray(callback_sec_parms4)),
])
CREATE_SESSION4resok = spec.struct("CREATE_SESSION4resok", [
    ("csr_sessionid", sessionid4),
    ("csr_sequence", sequenceid4),
    ("csr_flags", UInt),
    ("csr_fore_chan_attrs", channel_attrs4),
    ("csr_back_chan_attrs", channel_attrs4),
])
CREATE_SESSION4res = _res("CREATE_SESSION4res", ("csr_resok4", CREATE_SESSION4resok))

# DESTROY_SESSION, FREE_STATEID
DESTROY_SESSION4args = spec.struct("DESTROY_SESSION4args", [
    ("dsa_sessionid", sessionid4),
])
DESTROY_SESSION4res = _status("DESTROY_SESSION4res", "dsr_status")

FREE_STATEID4args = spec.struct("FREE_STATEID4args", [
    ("fsa_stateid", stateid4),
])
FREE_STATEID4res = _status("FREE_STATEID4res", "fsr_status")

# GET_DIR_DELEGATION
attr_notice4 = spec.typedef("attr_notice4", nfstime4)

GET_DIR_DELEGATION4args = spec.struct("GET_DIR_DELEGATION4args", [
    ("gdda_signal_deleg_avail", Bool),
    ("gdda_notification_types", bitmap4),
    ("gdda_child_attr_delay", attr_notice4),
    ("gdda_dir_attr_delay", attr_notice4),
    ("gdda_child_attributes", bitmap4),
    ("gdda_dir_attributes", bitmap4),
])
GET_DIR_DELEGATION4resok = spec.struct("GET_DIR_DELEGATION4resok", [
    ("gddr_cookieverf", verifier4),
    ("gddr_stateid", stateid4),
    ("gddr_notification", bitmap4),
    ("gddr_child_attributes", bitmap4),
    ("gddr_dir_attributes", bitmap4),
])

gddrnf4_status = spec.enum("gddrnf4_status", [
    ("GDD4_OK", 0),
    ("GDD4_UNAVAIL", 1),
])

GET_DIR_DELEGATION4res_non_fatal = spec.union("GET_DIR_DELEGATION4res_non_fatal", gddrnf4_status, {
    K.GDD4_OK: ("gddrnf_resok4", GET_DIR_DELEGATION4resok),
    K.GDD4_UNAVAIL: ("gddrnf_will_signal_deleg_avail", Bool),
})
GET_DIR_DELEGATION4res = _res(
    "GET_DIR_DELEGATION4res", ("gddr_res_non_fatal4", GET_DIR_DELEGATION4res_non_fatal)
)

# GETDEVICEINFO, GETDEVICELIST
GETDEVICEINFO4args = spec.struct("GETDEVICEINFO4args", [
    ("gdia_device_id", deviceid4),
    ("gdia_layout_type", layouttype4),
    ("gdia_maxcount", count4),
    ("gdia_notify_types", bitmap4),
])
GETDEVICEINFO4resok = spec.struct("GETDEVICEINFO4resok", [
    ("gdir_device_addr", device_addr4),
    ("gdir_notification", bitmap4),
])
GETDEVICEINFO4res = _res("GETDEVICEINFO4res", ("gdir_resok4", GETDEVICEINFO4resok), errors={
    K.NFS4ERR_TOOSMALL: ("gdir_mincount", count4),
})

GETDEVICELIST4args = spec.struct("GETDEVICELIST4args", [
    ("gdla_layout_type", layouttype4),
    ("gdla_maxdevices", count4),
    ("gdla_cookie", nfs_cookie4),
    ("gdla_cookieverf", verifier4),
])
GETDEVICELIST4resok = spec.struct("GETDEVICELIST4resok", [
    ("gdlr_cookie", nfs_cookie4),
    ("gdlr_cookieverf", verifier4),
    ("gdlr_deviceid_list", VarArray(deviceid4)),
    ("gdlr_eof", Bool),
])
GETDEVICELIST4res = _res("GETDEVICELIST4res", ("gdlr_resok4", GETDEVICELIST4resok))

# LAYOUTCOMMIT
newtime4 = spec.union("newtime4", Bool, {  # switch (bool nt_timechanged)
    True: ("nt_time", nfstime4),
    False: Void,
})

newoffset4 = spec.union("newoffset4", Bool, {  # switch (bool no_newoffset)
    True: ("no_offset", offset4),
    False: Void,
})

LAYOUTCOMMIT4args = spec.struct("LAYOUTCOMMIT4args", [
    ("loca_offset", offset4),
    ("loca_length", length4),
    ("loca_reclaim", Bool),
    ("loca_stateid", stateid4),
    ("loca_last_write_offset", newoffset4),
    ("loca_time_modify", newtime4),
    ("loca_layoutupdate", layoutupdate4),
])

newsize4 = spec.union("newsize4", Bool, {  # switch (bool ns_sizechanged)
    True: ("ns_size", length4),
    False: Void,
})

LAYOUTCOMMIT4resok = spec.struct("LAYOUTCOMMIT4resok", [
    ("locr_newsize", newsize4),
])
LAYOUTCOMMIT4res = _res("LAYOUTCOMMIT4res", ("locr_resok4", LAYOUTCOMMIT4resok))

# LAYOUTGET
LAYOUTGET4args = spec.struct("LAYOUTGET4args", [
    ("loga_signal_layout_avail", Bool),
    ("loga_layout_type", layouttype4),
    ("loga_iomode", layoutiomode4),
    ("loga_offset", offset4),
    ("loga_length", length4),
    ("loga_minlength", length4),
    ("loga_stateid", stateid4),
    ("loga_maxcount", count4),
])
LAYOUTGET4resok = spec.struct("LAYOUTGET4resok", [
    ("logr_return_on_close", Bool),
    ("logr_stateid", stateid4),
    ("logr_layout", VarArray(layout4)),
])
LAYOUTGET4res = _res("LAYOUTGET4res", ("logr_resok4", LAYOUTGET4resok), errors={
    K.NFS4ERR_LAYOUTTRYLATER: ("logr_will_signal_layout_avail", Bool),
})

# LAYOUTRETURN
LAYOUTRETURN4args = spec.struct("LAYOUTRETURN4args", [
    ("lora_reclaim", Bool),
    ("lora_layout_type", layouttype4),
    ("lora_iomode", layoutiomode4),
    ("lora_layoutreturn", layoutreturn4),
])

layoutreturn_stateid = spec.union("layoutreturn_stateid", Bool, {  # switch (bool lrs_present)
    True: ("lrs_stateid", stateid4),
    False: Void,
})
LAYOUTRETURN4res = _res("LAYOUTRETURN4res", ("lorr_stateid", layoutreturn_stateid))

# SECINFO_NO_NAME
secinfo_style4 = spec.enum("secinfo_style4", [
    ("SECINFO_STYLE4_CURRENT_FH", 0),
    ("SECINFO_STYLE4_PARENT", 1),
])
SECINFO_NO_NAME4args = spec.typedef("SECINFO_NO_NAME4args", secinfo_style4)
SECINFO_NO_NAME4res = spec.typedef("SECINFO_NO_NAME4res", SECINFO4res)

# SEQUENCE
SEQUENCE4args = spec.struct("SEQUENCE4args", [
    ("sa_sessionid", sessionid4),
    ("sa_sequenceid", sequenceid4),
    ("sa_slotid", slotid4),
    ("sa_highest_slotid", slotid4),
    ("sa_cachethis", Bool),
])

_consts(
    SEQ4_STATUS_CB_PATH_DOWN=0x00000001,
    SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRING=0x00000002,
    SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRED=0x00000004,
    SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED=0x00000008,
    SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED=0x00000010,
    SEQ4_STATUS_ADMIN_STATE_REVOKED=0x00000020,
    SEQ4_STATUS_RECALLABLE_STATE_REVOKED=0x00000040,
    SEQ4_STATUS_LEASE_MOVED=0x00000080,
    SEQ4_STATUS_RESTART_RECLAIM_NEEDED=0x00000100,
    SEQ4_STATUS_CB_PATH_DOWN_SESSION=0x00000200,
    SEQ4_STATUS_BACKCHANNEL_FAULT=0x00000400,
    SEQ4_STATUS_DEVID_CHANGED=0x00000800,
    SEQ4_STATUS_DEVID_DELETED=0x00001000,
)

SEQUENCE4resok = spec.struct("SEQUENCE4resok", [
    ("sr_sessionid", sessionid4),
    ("sr_sequenceid", sequenceid4),
    ("sr_slotid", slotid4),
    ("sr_highest_slotid", slotid4),
    ("sr_target_highest_slotid", slotid4),
    ("sr_status_flags", UInt),
])
SEQUENCE4res = _res("SEQUENCE4res", ("sr_resok4", SEQUENCE4resok))

# SET_SSV
ssa_digest_input4 = spec.struct("ssa_digest_input4", [
    ("sdi_seqargs", SEQUENCE4args),
])
SET_SSV4args = spec.struct("SET_SSV4args", [
    ("ssa_ssv", VarOpaque()),
    ("ssa_digest", VarOpaque()),
])
ssr_digest_input4 = spec.struct("ssr_digest_input4", [
    ("sdi_seqres", SEQUENCE4res),
])
SET_SSV4resok = spec.struct("SET_SSV4resok", [
    ("ssr_digest", VarOpaque()),
])
SET_SSV4res = _res("SET_SSV4res", ("ssr_resok4", SET_SSV4resok))

# TEST_STATEID
TEST_STATEID4args = spec.struct("TEST_STATEID4args", [
    ("ts_stateids", VarArray(stateid4)),
])
TEST_STATEID4resok = spec.struct("TEST_STATEID4resok", [
    ("tsr_status_codes", VarArray(nfsstat4)),
])
TEST_STATEID4res = _res("TEST_STATEID4res", ("tsr_resok4", TEST_STATEID4resok))

# WANT_DELEGATION
deleg_claim4 = spec.union("deleg_claim4", open_claim_type4, {
    K.CLAIM_FH: Void,
    K.CLAIM_DELEG_PREV_FH: Void,
    K.CLAIM_PREVIOUS: ("dc_delegate_type", open_delegation_type4),
})

WANT_DELEGATION4args = spec.struct("WANT_DELEGATION4args", [
    ("wda_want", UInt),
    ("wda_claim", deleg_claim4),
])
WANT_DELEGATION4res = _res("WANT_DELEGATION4res", ("wdr_resok4", open_delegation4))

# DESTROY_CLIENTID, RECLAIM_COMPLETE
DESTROY_CLIENTID4args = spec.struct("DESTROY_CLIENTID4args", [
    ("dca_clientid", clientid4),
])
DESTROY_CLIENTID4res = _status("DESTROY_CLIENTID4res", "dcr_status")

RECLAIM_COMPLETE4args = spec.struct("RECLAIM_COMPLETE4args", [
    ("rca_one_fs", Bool),
])
RECLAIM_COMPLETE4res = _status("RECLAIM_COMPLETE4res", "rcr_status")

# -------------------------------------------------------------------------- NFSv4.2 ops
# COPY
COPY4args = spec.struct("COPY4args", [  # SAVED_FH: source, CURRENT_FH: destination
    ("ca_src_stateid", stateid4),
    ("ca_dst_stateid", stateid4),
    ("ca_src_offset", offset4),
    ("ca_dst_offset", offset4),
    ("ca_count", length4),
    ("ca_consecutive", Bool),
    ("ca_synchronous", Bool),
    ("ca_source_server", VarArray(netloc4)),
])

copy_requirements4 = spec.struct("copy_requirements4", [
    ("cr_consecutive", Bool),
    ("cr_synchronous", Bool),
])

COPY4resok = spec.struct("COPY4resok", [
    ("cr_response", write_response4),
    ("cr_requirements", copy_requirements4),
])
COPY4res = _res("COPY4res", ("cr_resok4", COPY4resok), errors={
    K.NFS4ERR_OFFLOAD_NO_REQS: ("cr_requirements", copy_requirements4),
})

# COPY_NOTIFY
COPY_NOTIFY4args = spec.struct("COPY_NOTIFY4args", [
    ("cna_src_stateid", stateid4),
    ("cna_destination_server", netloc4),
])
COPY_NOTIFY4resok = spec.struct("COPY_NOTIFY4resok", [
    ("cnr_lease_time", nfstime4),
    ("cnr_stateid", stateid4),
    ("cnr_source_server", VarArray(netloc4)),
])
COPY_NOTIFY4res = _res("COPY_NOTIFY4res", ("resok4", COPY_NOTIFY4resok))

# OFFLOAD_CANCEL, OFFLOAD_STATUS
OFFLOAD_CANCEL4args = spec.struct("OFFLOAD_CANCEL4args", [
    ("oca_stateid", stateid4),
])
OFFLOAD_CANCEL4res = _status("OFFLOAD_CANCEL4res", "ocr_status")

OFFLOAD_STATUS4args = spec.struct("OFFLOAD_STATUS4args", [
    ("osa_stateid", stateid4),
])
OFFLOAD_STATUS4resok = spec.struct("OFFLOAD_STATUS4resok", [
    ("osr_count", length4),
    ("osr_complete", VarArray(nfsstat4, 1)),
])
OFFLOAD_STATUS4res = _res("OFFLOAD_STATUS4res", ("osr_resok4", OFFLOAD_STATUS4resok))

# ALLOCATE, DEALLOCATE
ALLOCATE4args = spec.struct("ALLOCATE4args", [
    ("aa_stateid", stateid4),
    ("aa_offset", offset4),
    ("aa_length", length4),
])
ALLOCATE4res = _status("ALLOCATE4res", "ar_status")

DEALLOCATE4args = spec.struct("DEALLOCATE4args", [
    ("da_stateid", stateid4),
    ("da_offset", offset4),
    ("da_length", length4),
])
DEALLOCATE4res = _status("DEALLOCATE4res", "dr_status")

# IO_ADVISE
IO_ADVISE_type4 = spec.enum("IO_ADVISE_type4", [  # bit numbers in iaa_hints / ior_hints
    ("IO_ADVISE4_NORMAL", 0),
    ("IO_ADVISE4_SEQUENTIAL", 1),
    ("IO_ADVISE4_SEQUENTIAL_BACKWARDS", 2),
    ("IO_ADVISE4_RANDOM", 3),
    ("IO_ADVISE4_WILLNEED", 4),
    ("IO_ADVISE4_WILLNEED_OPPORTUNISTIC", 5),
    ("IO_ADVISE4_DONTNEED", 6),
    ("IO_ADVISE4_NOREUSE", 7),
    ("IO_ADVISE4_READ", 8),
    ("IO_ADVISE4_WRITE", 9),
    ("IO_ADVISE4_INIT_PROXIMITY", 10),
])

IO_ADVISE4args = spec.struct("IO_ADVISE4args", [
    ("iaa_stateid", stateid4),
    ("iaa_offset", offset4),
    ("iaa_count", length4),
    ("iaa_hints", bitmap4),
])
IO_ADVISE4resok = spec.struct("IO_ADVISE4resok", [
    ("ior_hints", bitmap4),
])
IO_ADVISE4res = _res("IO_ADVISE4res", ("resok4", IO_ADVISE4resok))

# LAYOUTERROR, LAYOUTSTATS
device_error4 = spec.struct("device_error4", [
    ("de_deviceid", deviceid4),
    ("de_status", nfsstat4),
    ("de_opnum", nfs_opnum4),
])

LAYOUTERROR4args = spec.struct("LAYOUTERROR4args", [
    ("lea_offset", offset4),
    ("lea_length", length4),
    ("lea_stateid", stateid4),
    ("lea_errors", VarArray(device_error4)),
])
LAYOUTERROR4res = _status("LAYOUTERROR4res", "ler_status")

io_info4 = spec.struct("io_info4", [
    ("ii_count", UHyper),
    ("ii_bytes", UHyper),
])

LAYOUTSTATS4args = spec.struct("LAYOUTSTATS4args", [
    ("lsa_offset", offset4),
    ("lsa_length", length4),
    ("lsa_stateid", stateid4),
    ("lsa_read", io_info4),
    ("lsa_write", io_info4),
    ("lsa_deviceid", deviceid4),
    ("lsa_layoutupdate", layoutupdate4),
])
LAYOUTSTATS4res = _status("LAYOUTSTATS4res", "lsr_status")

# READ_PLUS
READ_PLUS4args = spec.struct("READ_PLUS4args", [
    ("rpa_stateid", stateid4),
    ("rpa_offset", offset4),
    ("rpa_count", count4),
])

read_plus_content = spec.union("read_plus_content", data_content4, {
    K.NFS4_CONTENT_DATA: ("rpc_data", data4),
    K.NFS4_CONTENT_HOLE: ("rpc_hole", data_info4),
}, default=Void)

read_plus_res4 = spec.struct("read_plus_res4", [
    ("rpr_eof", Bool),
    ("rpr_contents", VarArray(read_plus_content)),
])
READ_PLUS4res = _res("READ_PLUS4res", ("rp_resok4", read_plus_res4))

# SEEK
SEEK4args = spec.struct("SEEK4args", [
    ("sa_stateid", stateid4),
    ("sa_offset", offset4),
    ("sa_what", data_content4),
])
seek_res4 = spec.struct("seek_res4", [
    ("sr_eof", Bool),
    ("sr_offset", offset4),
])
SEEK4res = _res("SEEK4res", ("resok4", seek_res4))

# WRITE_SAME
WRITE_SAME4args = spec.struct("WRITE_SAME4args", [
    ("wsa_stateid", stateid4),
    ("wsa_stable", stable_how4),
    ("wsa_adb", app_data_block4),
])
WRITE_SAME4res = _res("WRITE_SAME4res", ("resok4", write_response4))

# ------------------------------------------------------------ extended attributes (RFC 8276)
GETXATTR4args = spec.struct("GETXATTR4args", [
    ("gxa_name", xattrkey4),
])
GETXATTR4res = _res("GETXATTR4res", ("gxr_value", xattrvalue4))

setxattr_option4 = spec.enum("setxattr_option4", [
    ("SETXATTR4_EITHER", 0),
    ("SETXATTR4_CREATE", 1),
    ("SETXATTR4_REPLACE", 2),
])

SETXATTR4args = spec.struct("SETXATTR4args", [
    ("sxa_option", setxattr_option4),
    ("sxa_key", xattrkey4),
    ("sxa_value", xattrvalue4),
])
SETXATTR4res = _res("SETXATTR4res", ("sxr_info", change_info4))

LISTXATTRS4args = spec.struct("LISTXATTRS4args", [
    ("lxa_cookie", nfs_cookie4),
    ("lxa_maxcount", count4),
])
LISTXATTRS4resok = spec.struct("LISTXATTRS4resok", [
    ("lxr_cookie", nfs_cookie4),
    ("lxr_names", VarArray(xattrkey4)),
    ("lxr_eof", Bool),
])
LISTXATTRS4res = _res("LISTXATTRS4res", ("lxr_value", LISTXATTRS4resok))

REMOVEXATTR4args = spec.struct("REMOVEXATTR4args", [
    ("rxa_name", xattrkey4),
])
REMOVEXATTR4res = _res("REMOVEXATTR4res", ("rxr_info", change_info4))

# ================================================================================ COMPOUND
# (operation, arguments or Void, result): the arms of nfs_argop4 and nfs_resop4.
_OPERATIONS = [
    ("ACCESS", ACCESS4args, ACCESS4res),
    ("CLOSE", CLOSE4args, CLOSE4res),
    ("COMMIT", COMMIT4args, COMMIT4res),
    ("CREATE", CREATE4args, CREATE4res),
    ("DELEGPURGE", DELEGPURGE4args, DELEGPURGE4res),
    ("DELEGRETURN", DELEGRETURN4args, DELEGRETURN4res),
    ("GETATTR", GETATTR4args, GETATTR4res),
    ("GETFH", Void, GETFH4res),
    ("LINK", LINK4args, LINK4res),
    ("LOCK", LOCK4args, LOCK4res),
    ("LOCKT", LOCKT4args, LOCKT4res),
    ("LOCKU", LOCKU4args, LOCKU4res),
    ("LOOKUP", LOOKUP4args, LOOKUP4res),
    ("LOOKUPP", Void, LOOKUPP4res),
    ("NVERIFY", NVERIFY4args, NVERIFY4res),
    ("OPEN", OPEN4args, OPEN4res),
    ("OPENATTR", OPENATTR4args, OPENATTR4res),
    ("OPEN_CONFIRM", OPEN_CONFIRM4args, OPEN_CONFIRM4res),
    ("OPEN_DOWNGRADE", OPEN_DOWNGRADE4args, OPEN_DOWNGRADE4res),
    ("PUTFH", PUTFH4args, PUTFH4res),
    ("PUTPUBFH", Void, PUTPUBFH4res),
    ("PUTROOTFH", Void, PUTROOTFH4res),
    ("READ", READ4args, READ4res),
    ("READDIR", READDIR4args, READDIR4res),
    ("READLINK", Void, READLINK4res),
    ("REMOVE", REMOVE4args, REMOVE4res),
    ("RENAME", RENAME4args, RENAME4res),
    ("RENEW", RENEW4args, RENEW4res),
    ("RESTOREFH", Void, RESTOREFH4res),
    ("SAVEFH", Void, SAVEFH4res),
    ("SECINFO", SECINFO4args, SECINFO4res),
    ("SETATTR", SETATTR4args, SETATTR4res),
    ("SETCLIENTID", SETCLIENTID4args, SETCLIENTID4res),
    ("SETCLIENTID_CONFIRM", SETCLIENTID_CONFIRM4args, SETCLIENTID_CONFIRM4res),
    ("VERIFY", VERIFY4args, VERIFY4res),
    ("WRITE", WRITE4args, WRITE4res),
    ("RELEASE_LOCKOWNER", RELEASE_LOCKOWNER4args, RELEASE_LOCKOWNER4res),
    ("BACKCHANNEL_CTL", BACKCHANNEL_CTL4args, BACKCHANNEL_CTL4res),
    ("BIND_CONN_TO_SESSION", BIND_CONN_TO_SESSION4args, BIND_CONN_TO_SESSION4res),
    ("EXCHANGE_ID", EXCHANGE_ID4args, EXCHANGE_ID4res),
    ("CREATE_SESSION", CREATE_SESSION4args, CREATE_SESSION4res),
    ("DESTROY_SESSION", DESTROY_SESSION4args, DESTROY_SESSION4res),
    ("FREE_STATEID", FREE_STATEID4args, FREE_STATEID4res),
    ("GET_DIR_DELEGATION", GET_DIR_DELEGATION4args, GET_DIR_DELEGATION4res),
    ("GETDEVICEINFO", GETDEVICEINFO4args, GETDEVICEINFO4res),
    ("GETDEVICELIST", GETDEVICELIST4args, GETDEVICELIST4res),
    ("LAYOUTCOMMIT", LAYOUTCOMMIT4args, LAYOUTCOMMIT4res),
    ("LAYOUTGET", LAYOUTGET4args, LAYOUTGET4res),
    ("LAYOUTRETURN", LAYOUTRETURN4args, LAYOUTRETURN4res),
    ("SECINFO_NO_NAME", SECINFO_NO_NAME4args, SECINFO_NO_NAME4res),
    ("SEQUENCE", SEQUENCE4args, SEQUENCE4res),
    ("SET_SSV", SET_SSV4args, SET_SSV4res),
    ("TEST_STATEID", TEST_STATEID4args, TEST_STATEID4res),
    ("WANT_DELEGATION", WANT_DELEGATION4args, WANT_DELEGATION4res),
    ("DESTROY_CLIENTID", DESTROY_CLIENTID4args, DESTROY_CLIENTID4res),
    ("RECLAIM_COMPLETE", RECLAIM_COMPLETE4args, RECLAIM_COMPLETE4res),
    ("ALLOCATE", ALLOCATE4args, ALLOCATE4res),
    ("COPY", COPY4args, COPY4res),
    ("COPY_NOTIFY", COPY_NOTIFY4args, COPY_NOTIFY4res),
    ("DEALLOCATE", DEALLOCATE4args, DEALLOCATE4res),
    ("IO_ADVISE", IO_ADVISE4args, IO_ADVISE4res),
    ("LAYOUTERROR", LAYOUTERROR4args, LAYOUTERROR4res),
    ("LAYOUTSTATS", LAYOUTSTATS4args, LAYOUTSTATS4res),
    ("OFFLOAD_CANCEL", OFFLOAD_CANCEL4args, OFFLOAD_CANCEL4res),
    ("OFFLOAD_STATUS", OFFLOAD_STATUS4args, OFFLOAD_STATUS4res),
    ("READ_PLUS", READ_PLUS4args, READ_PLUS4res),
    ("SEEK", SEEK4args, SEEK4res),
    ("WRITE_SAME", WRITE_SAME4args, WRITE_SAME4res),
    ("CLONE", CLONE4args, CLONE4res),
    ("GETXATTR", GETXATTR4args, GETXATTR4res),
    ("SETXATTR", SETXATTR4args, SETXATTR4res),
    ("LISTXATTRS", LISTXATTRS4args, LISTXATTRS4res),
    ("REMOVEXATTR", REMOVEXATTR4args, REMOVEXATTR4res),
    ("ILLEGAL", Void, ILLEGAL4res),
]


def _arm(name, t):
    return Void if t is Void else (name, t)


nfs_argop4 = spec.union("nfs_argop4", nfs_opnum4, {
    spec.consts[f"OP_{op}"]: _arm(f"op{op.lower()}", args) for op, args, _ in _OPERATIONS
})

nfs_resop4 = spec.union("nfs_resop4", nfs_opnum4, {
    spec.consts[f"OP_{op}"]: (f"op{op.lower()}", res) for op, _, res in _OPERATIONS
})

COMPOUND4args = spec.struct("COMPOUND4args", [
    ("tag", utf8str_cs),
    ("minorversion", UInt),
    ("argarray", VarArray(nfs_argop4)),
])

COMPOUND4res = spec.struct("COMPOUND4res", [
    ("status", nfsstat4),
    ("tag", utf8str_cs),
    ("resarray", VarArray(nfs_resop4)),
])

_consts(
    NFS4_PROGRAM=100003,
    NFS_V4=4,
    NFSPROC4_NULL=0,
    NFSPROC4_COMPOUND=1,
)

# =============================================================================== callbacks
# CB_GETATTR, CB_RECALL (4.0 and later)
CB_GETATTR4args = spec.struct("CB_GETATTR4args", [
    ("fh", nfs_fh4),
    ("attr_request", bitmap4),
])
CB_GETATTR4resok = spec.struct("CB_GETATTR4resok", [
    ("obj_attributes", fattr4),
])
CB_GETATTR4res = _res("CB_GETATTR4res", ("resok4", CB_GETATTR4resok))

CB_RECALL4args = spec.struct("CB_RECALL4args", [
    ("stateid", stateid4),
    ("truncate", Bool),
    ("fh", nfs_fh4),
])
CB_RECALL4res = _status("CB_RECALL4res")

CB_ILLEGAL4res = _status("CB_ILLEGAL4res")

# CB_LAYOUTRECALL
layoutrecall_type4 = spec.enum("layoutrecall_type4", [
    ("LAYOUTRECALL4_FILE", K.LAYOUT4_RET_REC_FILE),
    ("LAYOUTRECALL4_FSID", K.LAYOUT4_RET_REC_FSID),
    ("LAYOUTRECALL4_ALL", K.LAYOUT4_RET_REC_ALL),
])

layoutrecall_file4 = spec.struct("layoutrecall_file4", [
    ("lor_fh", nfs_fh4),
    ("lor_offset", offset4),
    ("lor_length", length4),
    ("lor_stateid", stateid4),
])

layoutrecall4 = spec.union("layoutrecall4", layoutrecall_type4, {
    K.LAYOUTRECALL4_FILE: ("lor_layout", layoutrecall_file4),
    K.LAYOUTRECALL4_FSID: ("lor_fsid", fsid4),
    K.LAYOUTRECALL4_ALL: Void,
})

CB_LAYOUTRECALL4args = spec.struct("CB_LAYOUTRECALL4args", [
    ("clora_type", layouttype4),
    ("clora_iomode", layoutiomode4),
    ("clora_changed", Bool),
    ("clora_recall", layoutrecall4),
])
CB_LAYOUTRECALL4res = _status("CB_LAYOUTRECALL4res", "clorr_status")

# CB_NOTIFY
notify_type4 = spec.enum("notify_type4", [  # bit numbers in notify4.notify_mask
    ("NOTIFY4_CHANGE_CHILD_ATTRS", 0),
    ("NOTIFY4_CHANGE_DIR_ATTRS", 1),
    ("NOTIFY4_REMOVE_ENTRY", 2),
    ("NOTIFY4_ADD_ENTRY", 3),
    ("NOTIFY4_RENAME_ENTRY", 4),
    ("NOTIFY4_CHANGE_COOKIE_VERIFIER", 5),
])

notify_entry4 = spec.struct("notify_entry4", [
    ("ne_file", component4),
    ("ne_attrs", fattr4),
])

prev_entry4 = spec.struct("prev_entry4", [
    ("pe_prev_entry", notify_entry4),
    ("pe_prev_entry_cookie", nfs_cookie4),
])

notify_remove4 = spec.struct("notify_remove4", [
    ("nrm_old_entry", notify_entry4),
    ("nrm_old_entry_cookie", nfs_cookie4),
])

notify_add4 = spec.struct("notify_add4", [
    ("nad_old_entry", VarArray(notify_remove4, 1)),
    ("nad_new_entry", notify_entry4),
    ("nad_new_entry_cookie", VarArray(nfs_cookie4, 1)),
    ("nad_prev_entry", VarArray(prev_entry4, 1)),
    ("nad_last_entry", Bool),
])

notify_attr4 = spec.struct("notify_attr4", [
    ("na_changed_entry", notify_entry4),
])

notify_rename4 = spec.struct("notify_rename4", [
    ("nrn_old_entry", notify_remove4),
    ("nrn_new_entry", notify_add4),
])

notify_verifier4 = spec.struct("notify_verifier4", [
    ("nv_old_cookieverf", verifier4),
    ("nv_new_cookieverf", verifier4),
])

notifylist4 = spec.typedef("notifylist4", VarOpaque())  # the notify_*4 values, encoded

notify4 = spec.struct("notify4", [
    ("notify_mask", bitmap4),  # notify_type4 or notify_deviceid_type4 bits
    ("notify_vals", notifylist4),
])

CB_NOTIFY4args = spec.struct("CB_NOTIFY4args", [
    ("cna_stateid", stateid4),
    ("cna_fh", nfs_fh4),
    ("cna_changes", VarArray(notify4)),
])
CB_NOTIFY4res = _status("CB_NOTIFY4res", "cnr_status")

# CB_PUSH_DELEG
CB_PUSH_DELEG4args = spec.struct("CB_PUSH_DELEG4args", [
    ("cpda_fh", nfs_fh4),
    ("cpda_delegation", open_delegation4),
])
CB_PUSH_DELEG4res = _status("CB_PUSH_DELEG4res", "cpdr_status")

# CB_RECALL_ANY, CB_RECALLABLE_OBJ_AVAIL
_consts(
    RCA4_TYPE_MASK_RDATA_DLG=0,
    RCA4_TYPE_MASK_WDATA_DLG=1,
    RCA4_TYPE_MASK_DIR_DLG=2,
    RCA4_TYPE_MASK_FILE_LAYOUT=3,
    RCA4_TYPE_MASK_BLK_LAYOUT=4,
    RCA4_TYPE_MASK_OBJ_LAYOUT_MIN=8,
    RCA4_TYPE_MASK_OBJ_LAYOUT_MAX=9,
    RCA4_TYPE_MASK_OTHER_LAYOUT_MIN=12,
    RCA4_TYPE_MASK_OTHER_LAYOUT_MAX=15,
)

CB_RECALL_ANY4args = spec.struct("CB_RECALL_ANY4args", [
    ("craa_objects_to_keep", UInt),
    ("craa_type_mask", bitmap4),
])
CB_RECALL_ANY4res = _status("CB_RECALL_ANY4res", "crar_status")

CB_RECALLABLE_OBJ_AVAIL4args = spec.typedef("CB_RECALLABLE_OBJ_AVAIL4args", CB_RECALL_ANY4args)
CB_RECALLABLE_OBJ_AVAIL4res = _status("CB_RECALLABLE_OBJ_AVAIL4res", "croa_status")

# CB_RECALL_SLOT
CB_RECALL_SLOT4args = spec.struct("CB_RECALL_SLOT4args", [
    ("rsa_target_highest_slotid", slotid4),
])
CB_RECALL_SLOT4res = _status("CB_RECALL_SLOT4res", "rsr_status")

# CB_SEQUENCE
referring_call4 = spec.struct("referring_call4", [
    ("rc_sequenceid", sequenceid4),
    ("rc_slotid", slotid4),
])

referring_call_list4 = spec.struct("referring_call_list4", [
    ("rcl_sessionid", sessionid4),
    ("rcl_referring_calls", VarArray(referring_call4)),
])

CB_SEQUENCE4args = spec.struct("CB_SEQUENCE4args", [
    ("csa_sessionid", sessionid4),
    ("csa_sequenceid", sequenceid4),
    ("csa_slotid", slotid4),
    ("csa_highest_slotid", slotid4),
    ("csa_cachethis", Bool),
    ("csa_referring_call_lists", VarArray(referring_call_list4)),
])
CB_SEQUENCE4resok = spec.struct("CB_SEQUENCE4resok", [
    ("csr_sessionid", sessionid4),
    ("csr_sequenceid", sequenceid4),
    ("csr_slotid", slotid4),
    ("csr_highest_slotid", slotid4),
    ("csr_target_highest_slotid", slotid4),
])
CB_SEQUENCE4res = _res("CB_SEQUENCE4res", ("csr_resok4", CB_SEQUENCE4resok))

# CB_WANTS_CANCELLED, CB_NOTIFY_LOCK
CB_WANTS_CANCELLED4args = spec.struct("CB_WANTS_CANCELLED4args", [
    ("cwca_contended_wants_cancelled", Bool),
    ("cwca_resourced_wants_cancelled", Bool),
])
CB_WANTS_CANCELLED4res = _status("CB_WANTS_CANCELLED4res", "cwcr_status")

CB_NOTIFY_LOCK4args = spec.struct("CB_NOTIFY_LOCK4args", [
    ("cnla_fh", nfs_fh4),
    ("cnla_lock_owner", lock_owner4),
])
CB_NOTIFY_LOCK4res = _status("CB_NOTIFY_LOCK4res", "cnlr_status")

# CB_NOTIFY_DEVICEID
notify_deviceid_type4 = spec.enum("notify_deviceid_type4", [
    ("NOTIFY_DEVICEID4_CHANGE", 1),
    ("NOTIFY_DEVICEID4_DELETE", 2),
])

notify_deviceid_delete4 = spec.struct("notify_deviceid_delete4", [
    ("ndd_layouttype", layouttype4),
    ("ndd_deviceid", deviceid4),
])

notify_deviceid_change4 = spec.struct("notify_deviceid_change4", [
    ("ndc_layouttype", layouttype4),
    ("ndc_deviceid", deviceid4),
    ("ndc_immediate", Bool),
])

CB_NOTIFY_DEVICEID4args = spec.struct("CB_NOTIFY_DEVICEID4args", [
    ("cnda_changes", VarArray(notify4)),
])
CB_NOTIFY_DEVICEID4res = _status("CB_NOTIFY_DEVICEID4res", "cndr_status")

# CB_OFFLOAD (4.2)
offload_info4 = spec.union("offload_info4", nfsstat4, {
    K.NFS4_OK: ("coa_resok4", write_response4),
}, default=("coa_bytes_copied", length4))

CB_OFFLOAD4args = spec.struct("CB_OFFLOAD4args", [
    ("coa_fh", nfs_fh4),
    ("coa_stateid", stateid4),
    ("coa_offload_info", offload_info4),
])
CB_OFFLOAD4res = _status("CB_OFFLOAD4res", "cor_status")

nfs_cb_opnum4 = spec.enum("nfs_cb_opnum4", [
    ("OP_CB_GETATTR", 3),
    ("OP_CB_RECALL", 4),
    # NFSv4.1
    ("OP_CB_LAYOUTRECALL", 5),
    ("OP_CB_NOTIFY", 6),
    ("OP_CB_PUSH_DELEG", 7),
    ("OP_CB_RECALL_ANY", 8),
    ("OP_CB_RECALLABLE_OBJ_AVAIL", 9),
    ("OP_CB_RECALL_SLOT", 10),
    ("OP_CB_SEQUENCE", 11),
    ("OP_CB_WANTS_CANCELLED", 12),
    ("OP_CB_NOTIFY_LOCK", 13),
    ("OP_CB_NOTIFY_DEVICEID", 14),
    # NFSv4.2
    ("OP_CB_OFFLOAD", 15),
    ("OP_CB_ILLEGAL", 10044),
])

_CB_OPERATIONS = [
    ("CB_GETATTR", CB_GETATTR4args, CB_GETATTR4res),
    ("CB_RECALL", CB_RECALL4args, CB_RECALL4res),
    ("CB_LAYOUTRECALL", CB_LAYOUTRECALL4args, CB_LAYOUTRECALL4res),
    ("CB_NOTIFY", CB_NOTIFY4args, CB_NOTIFY4res),
    ("CB_PUSH_DELEG", CB_PUSH_DELEG4args, CB_PUSH_DELEG4res),
    ("CB_RECALL_ANY", CB_RECALL_ANY4args, CB_RECALL_ANY4res),
    ("CB_RECALLABLE_OBJ_AVAIL", CB_RECALLABLE_OBJ_AVAIL4args, CB_RECALLABLE_OBJ_AVAIL4res),
    ("CB_RECALL_SLOT", CB_RECALL_SLOT4args, CB_RECALL_SLOT4res),
    ("CB_SEQUENCE", CB_SEQUENCE4args, CB_SEQUENCE4res),
    ("CB_WANTS_CANCELLED", CB_WANTS_CANCELLED4args, CB_WANTS_CANCELLED4res),
    ("CB_NOTIFY_LOCK", CB_NOTIFY_LOCK4args, CB_NOTIFY_LOCK4res),
    ("CB_NOTIFY_DEVICEID", CB_NOTIFY_DEVICEID4args, CB_NOTIFY_DEVICEID4res),
    ("CB_OFFLOAD", CB_OFFLOAD4args, CB_OFFLOAD4res),
    ("CB_ILLEGAL", Void, CB_ILLEGAL4res),
]

nfs_cb_argop4 = spec.union("nfs_cb_argop4", nfs_cb_opnum4, {
    spec.consts[f"OP_{op}"]: _arm(f"op{op.lower().replace('_', '', 1)}", args)
    for op, args, _ in _CB_OPERATIONS
})

nfs_cb_resop4 = spec.union("nfs_cb_resop4", nfs_cb_opnum4, {
    spec.consts[f"OP_{op}"]: (f"op{op.lower().replace('_', '', 1)}", res)
    for op, _, res in _CB_OPERATIONS
})

CB_COMPOUND4args = spec.struct("CB_COMPOUND4args", [
    ("tag", utf8str_cs),
    ("minorversion", UInt),
    ("callback_ident", UInt),  # 4.0: from SETCLIENTID; 4.1: ignored
    ("argarray", VarArray(nfs_cb_argop4)),
])

CB_COMPOUND4res = spec.struct("CB_COMPOUND4res", [
    ("status", nfsstat4),
    ("tag", utf8str_cs),
    ("resarray", VarArray(nfs_cb_resop4)),
])

_consts(
    NFS4_CALLBACK=0x40000000,  # 4.0: the client picks the program (cb_program); 4.1: CREATE_SESSION
    NFS_CB=1,
    CB_NULL=0,
    CB_COMPOUND=1,
)

# ================================================================================= compile
_compiled = spec.compile("nfsd.xdr.gen_nfs4")  # nfsd/xdr/gen_nfs4.py, the generated code
globals().update({k: v for k, v in vars(_compiled).items() if not k.startswith("_")})


def _arm_table(union) -> dict:
    """tag -> arm type (the generated class for structs and unions, else the declaration)."""
    out = {}
    for tag, (_, t) in union._xdr.arms.items():
        out[tag] = t.cls if isinstance(t, (Struct, Union)) else t
    return out


def _names(enum) -> dict:
    return {value: name.removeprefix("OP_") for name, value in enum.members}


OP_ARGS: dict = _arm_table(nfs_argop4)
OP_RES: dict = _arm_table(nfs_resop4)
OP_NAMES: dict = _names(nfs_opnum4)
CB_OP_ARGS: dict = _arm_table(nfs_cb_argop4)
CB_OP_RES: dict = _arm_table(nfs_cb_resop4)
CB_OP_NAMES: dict = _names(nfs_cb_opnum4)

# attribute number -> (name, declared type `fattr4_<name>`), in number order
ATTRS: dict = dict(sorted(_attr_types.items()))
