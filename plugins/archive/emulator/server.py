"""Start the archive emulator on loopback: GAVO DaCHS for TAP, nginx for DataLink and dataPortal.

>>> with ArchiveEmulator("/tmp/emu") as emu:      # doctest: +SKIP
...     emu.url                                   # the "mirror": <url>/tap, /datalink/sync, /dataPortal/
...     emu.faulty_url                            # the same through the fault proxy
...     emu.faults.inject(Fault("reset", after=5000))

Needs ``dachs`` (Debian ``gavodachs2-server``, with its PostgreSQL running or
startable) and ``nginx``; ``.ci/install-archive-emulator`` installs both.
Command line: ``python -m almatools.plugins.archive.emulator ROOT``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from .catalog import COLUMNS, build_site, write_obscore_csv
from .faults import FaultProxy
from .sourcecat import SourceCatalogueServer

__all__ = ["ArchiveEmulator", "EmulatorUnavailable", "emulator_available"]

URL_PLACEHOLDER = "http://archive.placeholder.invalid"


class EmulatorUnavailable(RuntimeError):
    """The servers the emulator needs are missing or would not start."""


def emulator_available() -> str:
    """'' when dachs and nginx are installed, else what is missing."""
    missing = [b for b in ("dachs", "nginx") if not shutil.which(b) and not os.path.exists(f"/usr/sbin/{b}")]
    return "" if not missing else (f"{' and '.join(missing)} not installed (run .ci/install-archive-emulator "
                                   "as root, or apt-get install nginx gavodachs2-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rd() -> str:
    """The DaCHS resource descriptor of ``ivoa.obscore``: ALMA's columns with units, UCDs, utypes and
    descriptions; ``s_region`` a pgsphere polygon served as STC-S text (``xtype="adql:REGION"``, as ALMA does)."""
    def column(c) -> str:
        attrs = [f'name="{c.name}"', f'type="{c.dbtype}"']
        for key in ("unit", "ucd", "utype", "xtype"):
            if getattr(c, key):
                attrs.append(f'{key}="{escape(getattr(c, key))}"')
        if c.description:
            attrs.append(f'description="{escape(c.description, {chr(34): "&quot;"})}"')
        if c.dbtype == "integer":
            return f'    <column {" ".join(attrs)} required="False"><values nullLiteral="-1"/></column>'
        return f'    <column {" ".join(attrs)}/>'
    cols = "\n".join(column(c) for c in COLUMNS)
    return f"""<resource schema="ivoa" resdir="almaemu">
  <meta name="title">ALMA Science Archive emulator</meta>
  <meta name="description">ALMA-shaped ivoa.obscore rows served on loopback for almatools tests and demo.</meta>
  <meta name="creationDate">2026-11-25T00:00:00</meta>
  <meta name="subject">interferometry</meta>
  <meta name="creator.name">almatools</meta>
  <table id="obscore" onDisk="True" adql="True">
    <meta name="description">ObsCore with ALMA's columns</meta>
    <stc>Polygon ICRS [s_region]</stc>
{cols}
  </table>
  <data id="import">
    <sources>data/obscore.csv</sources>
    <csvGrammar enc="utf-8"/>
    <make table="obscore"/>
  </data>
</resource>
"""


def _ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


class ArchiveEmulator:
    """The emulator's servers under *root*; ``rate`` is nginx's per-connection ``limit_rate`` (``0``: none)."""

    def __init__(self, root: str | os.PathLike, rate: str = "0", username: str = "alice", slow_rate: int = 1 << 20):
        self.root = Path(root).resolve()
        self.rate, self.slow_rate = rate, slow_rate
        self.username, self.password = username, secrets.token_urlsafe(12)
        self.procs: list[subprocess.Popen] = []
        self.faults: FaultProxy | None = None
        self.slow: FaultProxy | None = None
        self.sourcecat: SourceCatalogueServer | None = None
        self.manifest: dict = {}
        self.url = self.faulty_url = ""
        self.database = ""  # this instance's own PostgreSQL database, when it could make one

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout: float = 90.0) -> "ArchiveEmulator":
        why = emulator_available()
        if why:
            raise EmulatorUnavailable(why)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nginx_port, self.dachs_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        # DataLink documents name their files with a placeholder that nginx replaces by the host the
        # client asked, so the same documents point through the fault proxy when read through it
        self.manifest = build_site(self.root, URL_PLACEHOLDER)
        self._start_dachs(timeout)
        self.sourcecat = SourceCatalogueServer().start()  # /sc/flux and /sourcecat/xmlrpc, behind nginx
        self._start_nginx(timeout)
        self.faults = FaultProxy(self.nginx_port)
        self.faulty_url = f"http://127.0.0.1:{self.faults.port}"
        # the same archive with every connection paced to slow_rate bytes/s, without nginx's per-request
        # burst (limit_rate lets each request send its first second at once), like a real network path
        self.slow = FaultProxy(self.nginx_port, rate=self.slow_rate)
        self.slow_url = self.slow.url
        return self

    def stop(self) -> None:
        if self.sourcecat:
            self.sourcecat.stop()
            self.sourcecat = None
        for proxy in (self.faults, self.slow):
            if proxy:
                proxy.close()
        self.faults = self.slow = None
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        if self.database:
            _drop_database(self.database)
            self.database = ""

    def add_bulk_mous(self, mous: str, nfiles: int, size: int) -> list[str]:
        """Publish *nfiles* raw-data tars of about *size* bytes for a made-up *mous* (benchmarks, tests).

        Each is a real tar (one member of synthetic bytes, then the end-of-archive blocks), written in
        1 MiB blocks so gigabytes cost no memory; DataLink lists them with their sizes, nginx serves
        them without a digest (like the real archive).
        """
        portal = self.root / "www" / "dataPortal"
        block = hashlib.sha256(mous.encode()).digest() * (1 << 15)  # 1 MiB
        M = mous.replace("uid://", "uid___").replace("/", "_")
        names, rows = [], []
        for k in range(nfiles):
            name = f"{M}.bench_part{k:02d}.asdm.sdm.tar"
            path = portal / name
            info = tarfile.TarInfo(f"raw/{M}.bench_part{k:02d}.bin")
            info.size, info.mtime, info.mode = size, 1_600_000_000, 0o644
            with open(path, "wb") as fh:
                fh.write(info.tobuf(tarfile.GNU_FORMAT))
                left = size
                while left > 0:
                    piece = block[:left] if left < len(block) else block
                    fh.write(bytes([k]) + piece[1:])
                    left -= len(piece)
                fh.write(bytes(-size % 512 + 1024))
            path.chmod(0o644)
            rows.append((mous, f"{URL_PLACEHOLDER}/dataPortal/{name}", "", "", "#progenitor", "benchmark raw data",
                         "application/x-tar", path.stat().st_size, "true"))
            names.append(name)
        self.add_datalink(mous, rows)
        return names

    def add_datalink(self, ident: str, rows: list[tuple], services: list[tuple[str, str]] = ()) -> None:
        """Serve a DataLink document for *ident*: rows of (ID, access_url, service_def, error_message,
        semantics, description, content_type, content_length, readable); URLs may use ``URL_PLACEHOLDER``."""
        from .catalog import _datalink_name, _votable
        for name in _datalink_name(ident):
            p = self.root / "www" / "datalink" / f"{name}.xml"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_votable(rows, list(services)))
            p.chmod(0o644)

    def access_log(self) -> list[dict]:
        """nginx's access log so far: one dict per request (time, duration, method, path, status, bytes, range,
        user, port), so tests can count what the server really sent."""
        out = []
        path = self.root / "nginx" / "access.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
            parts = line.split("\t")
            if len(parts) != 9:
                continue
            end, duration, method, uri, status, sent, rng, user, port = parts
            out.append({"end": float(end), "start": float(end) - float(duration), "method": method, "path": uri,
                        "status": int(status), "bytes": int(sent), "range": "" if rng == "-" else rng,
                        "user": "" if user == "-" else user, "port": int(port)})
        return out

    def file_path(self, name: str) -> Path:
        """Where a dataPortal file lies on disk (to compare downloads with)."""
        www = self.root / "www" / "dataPortal"
        return www / name if (www / name).exists() else www / "proprietary" / name

    # ----------------------------------------------------------------------------------- DaCHS
    def _env(self) -> dict:
        return dict(os.environ, GAVOSETTINGS=str(self.root / "gavo.rc"), GAVO_INPUTSDIR=str(self.root / "inputs"))

    def _start_dachs(self, timeout: float) -> None:
        _ensure_postgres()
        inputs = self.root / "inputs" / "almaemu"
        (inputs / "data").mkdir(parents=True, exist_ok=True)
        (inputs / "q.rd").write_text(_rd())
        write_obscore_csv(inputs / "data" / "obscore.csv")
        log = open(self.root / "dachs.log", "ab")
        general = self._private_database(log)
        (self.root / "gavo.rc").write_text(
            f"{general}[web]\nserverPort: {self.dachs_port}\nserverURL: {self.url}\n"
            "bindAddress: 127.0.0.1\n")
        _readable(self.root)
        imp = subprocess.run(["dachs", "imp", "almaemu/q"], env=self._env(), stdout=log, stderr=subprocess.STDOUT)
        if imp.returncode:
            raise EmulatorUnavailable(f"dachs imp failed (see {self.root / 'dachs.log'})")
        self.procs.append(subprocess.Popen(["dachs", "serve", "debug"], env=self._env(), stdout=log,
                                           stderr=subprocess.STDOUT, cwd=self.root))
        _wait_http(f"http://127.0.0.1:{self.dachs_port}/tap/availability", timeout, self.root / "dachs.log",
                   proc=self.procs[-1])

    def _private_database(self, log) -> str:
        """Give this instance its own DaCHS root and PostgreSQL database; the ``[general]`` lines for gavo.rc.

        DaCHS keeps ``ivoa.obscore`` in one system-wide database, so two emulators (two test runs,
        a test run beside the demo) would overwrite each other's catalogue. As root, each instance
        gets a database of its own (created from nothing, dropped on stop; leftovers of killed runs
        are dropped on the next start). Otherwise the system database is shared, as before.
        """
        system_etc = Path("/var/gavo/etc")
        if os.geteuid() != 0 or not (system_etc / "feed").exists():
            return ""
        _drop_stale_databases()
        name = f"{DB_PREFIX}{os.getpid()}_{self.dachs_port}"
        _psql("postgres", f'CREATE DATABASE "{name}" OWNER gavoadmin')
        self.database = name
        _psql(name, "CREATE EXTENSION IF NOT EXISTS pg_sphere; CREATE EXTENSION IF NOT EXISTS q3c")
        gavo = self.root / "gavo"
        etc = gavo / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        for profile in ("feed", "trustedquery", "untrustedquery", "defaultmeta.txt"):
            if (system_etc / profile).exists():
                shutil.copy(system_etc / profile, etc / profile)
        (etc / "dsn").write_text(f"database = {name}\nhost = localhost\nport = 5432\n")
        password = next((line.split("=", 1)[1].strip() for line in (etc / "feed").read_text().splitlines()
                         if line.strip().startswith("password")), "")
        (self.root / "gavo.rc").write_text(f"[general]\nrootDir: {gavo}\n")
        init = subprocess.run(["dachs", "init", "-d", f"host=localhost dbname={name} user=gavoadmin "
                                                      f"password='{password}'"],
                              env=self._env(), stdout=log, stderr=subprocess.STDOUT)
        if init.returncode:
            raise EmulatorUnavailable(f"dachs init of database {name} failed (see {self.root / 'dachs.log'})")
        return f"[general]\nrootDir: {gavo}\n"

    # ----------------------------------------------------------------------------------- nginx
    def _start_nginx(self, timeout: float) -> None:
        (self.root / "nginx").mkdir(exist_ok=True)
        (self.root / "htpasswd").write_text(f"{self.username}:{_ssha(self.password)}\n")
        # RFC 9530 digests of every file, so clients can verify content and not just size
        digests = "\n".join(f'        "/dataPortal/{name}" "sha-256=:{base64.b64encode(bytes.fromhex(v["sha256"])).decode()}:";'
                             for name, v in self.manifest.items() if v["sized"])
        conf = self.root / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}worker_processes 2;
daemon off;
pid {self.root}/nginx/nginx.pid;
error_log {self.root}/nginx/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format almatools "$msec\t$request_time\t$request_method\t$uri\t$status\t$body_bytes_sent\t$http_range\t$remote_user\t$server_port";
    access_log {self.root}/nginx/access.log almatools;
    client_body_temp_path {self.root}/nginx/body; proxy_temp_path {self.root}/nginx/proxy;
    fastcgi_temp_path {self.root}/nginx/fcgi; uwsgi_temp_path {self.root}/nginx/uwsgi;
    scgi_temp_path {self.root}/nginx/scgi;
    types {{ application/x-tar tar; text/plain txt py dat; application/x-votable+xml xml; image/fits fits;
             application/gzip gz tgz; text/html html; application/pdf pdf; image/png png; }}
    default_type application/octet-stream;
    sendfile on;
    map_hash_bucket_size 256;
    map $uri $repr_digest {{
        default "";
{digests}
    }}
    # the file name for Content-Disposition, as the archive's dataPortal sends it: unquoted
    # ('attachment; filename=uid___A002_X8a951a_X69b.asdm.sdm.tar', astropy/astroquery#2020),
    # which is also what astroquery's download_files reads (it would keep quotes in the name)
    map $uri $file_name {{
        default "";
        "~^/dataPortal/(?:proprietary/)?(?<base>[^/]+)$" $base;
    }}
    server {{
        listen 127.0.0.1:{self.nginx_port};
        root {self.root}/www;
        # TAP, its async jobs and VOSI documents (DaCHS writes its URLs with the public serverURL)
        location ~ ^/(tap|__system__|static)(/|$) {{ proxy_pass http://127.0.0.1:{self.dachs_port}; proxy_read_timeout 120s; }}
        location ~ ^/(sc|sourcecat|legacy)/ {{ proxy_pass http://127.0.0.1:{self.sourcecat.port}; }}
        location = /datalink/sync {{
            default_type "application/x-votable+xml;content=datalink";
            sub_filter "{URL_PLACEHOLDER}" "http://$http_host";
            sub_filter_once off;
            sub_filter_types *;
            try_files /datalink/$arg_ID.xml =404;
        }}
        location /dataPortal/proprietary/ {{ return 404; }}
        location /dataPortal/ {{
            limit_rate {self.rate};
            add_header Repr-Digest $repr_digest;
            add_header Content-Disposition 'attachment; filename=$file_name';
            try_files $uri @proprietary;
        }}
        location @proprietary {{
            auth_basic "ALMA";
            auth_basic_user_file {self.root}/htpasswd;
            limit_rate {self.rate};
            add_header Repr-Digest $repr_digest;
            add_header Content-Disposition 'attachment; filename=$file_name';
            rewrite ^/dataPortal/(.*)$ /dataPortal/proprietary/$1 break;
        }}
        # /redirect/<ip>:<port>/<path>: a 302 to another host, as a mirror hands a download on
        location ~ "^/redirect/(?<to_host>[0-9.]+:[0-9]+)/(?<to_path>.*)$" {{
            return 302 http://$to_host/$to_path;
        }}
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        log = open(self.root / "nginx" / "stderr.log", "ab")
        self.procs.append(subprocess.Popen([nginx, "-c", str(conf), "-p", str(self.root / "nginx")],
                                           stdout=log, stderr=subprocess.STDOUT))
        _wait_http(f"{self.url}/dataPortal/", timeout, self.root / "nginx" / "stderr.log", ok=(200, 401, 403, 404),
                   proc=self.procs[-1])


#: held while PostgreSQL's state is read and the cluster started
POSTGRES_LOCK = Path(tempfile.gettempdir()) / "almatools-postgres-start.lock"


def _ensure_postgres() -> None:
    """DaCHS's database must run; start the Debian cluster when it does not (needs root).

    Two processes starting emulators at once (two mutation parts, a test run beside a demo) would both
    find the cluster down, and the second start fails on the first's lock file: the look and the start
    are one step under a file lock."""
    if not shutil.which("pg_lsclusters"):
        return
    with open(POSTGRES_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            ver, name, _, status = line.split()[:4]
            if status != "online":
                r = subprocess.run(["pg_ctlcluster", ver, name, "start"], capture_output=True, text=True)
                if r.returncode:
                    raise EmulatorUnavailable(f"PostgreSQL {ver}/{name} is down and would not start: "
                                              f"{r.stderr.strip()}")


DB_PREFIX = "almaemu_"


def _psql(database: str, sql: str) -> str:
    r = subprocess.run(["su", "postgres", "-c", f"psql -q -At -v ON_ERROR_STOP=1 -d {database}"], input=sql,
                       capture_output=True, text=True)
    if r.returncode:
        raise EmulatorUnavailable(f"PostgreSQL refused {sql!r} in {database}: {r.stderr.strip()}")
    return r.stdout


def _drop_database(name: str) -> None:
    try:
        _psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except EmulatorUnavailable:
        pass  # a leftover is dropped by the next start


def _drop_stale_databases() -> None:
    """Drop the private databases of emulators whose process is gone (killed test runs)."""
    names = _psql("postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'").split()
    for name in names:
        pid = name[len(DB_PREFIX):].split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _drop_database(name)


def _readable(root: Path) -> None:
    """DaCHS drops privileges to its own user: it must read the inputs."""
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))


def _wait_http(url: str, timeout: float, log: Path, ok=(200,), proc=None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise EmulatorUnavailable(f"the server for {url} exited ({proc.returncode}): " + " | ".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = str(e)
        except OSError as e:
            last = str(e)
        time.sleep(0.3)
    raise EmulatorUnavailable(f"{url} did not answer within {timeout:.0f} s ({last}); see {log}")
