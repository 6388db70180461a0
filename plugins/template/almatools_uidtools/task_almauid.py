"""Implementation of the ``almauid`` task."""

import re

from almatools import TaskParameterError, log

_ARCHIVE = re.compile(r"^uid://(A\d{3})/(X[0-9a-fA-F]+)/(X[0-9a-fA-F]+)$")
_FILENAME = re.compile(r"^uid___(A\d{3})_(X[0-9a-fA-F]+)_(X[0-9a-fA-F]+)$")


def almauid(uids, form):
    """Return both forms of every UID in *uids* (see ``almauid.xml``)."""
    if not uids:
        raise TaskParameterError("almauid", "uids", uids, "must name at least one UID")
    converted = []
    for uid in uids:
        match = _ARCHIVE.match(uid.strip()) or _FILENAME.match(uid.strip())
        if match is None:
            raise TaskParameterError("almauid", "uids", uid,
                                     "must look like uid://A001/X12a3/Xe9 or uid___A001_X12a3_Xe9")
        archive = "uid://{}/{}/{}".format(*match.groups())
        filename = "uid___{}_{}_{}".format(*match.groups())
        converted.append({"archive": archive, "filename": filename, "member_dir": f"member.{filename}"})
        log.info(f"{uid} -> {archive if form == 'archive' else filename}")
    return {"uids": [c[form] for c in converted], "converted": converted}
