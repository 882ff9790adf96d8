"""Installing wifiprov where docs/raspberry-pi.md says, as it says (issue 12 item 5).

`make dist` builds the wheel and sdist of HEAD, versioned from git (two commits, two versions);
then the page's own commands, read from its ``<!-- test: NAME -->`` blocks, run in a clean Debian
12 root file system (debootstrap, like Raspberry Pi OS Lite: see debian_root.py): the wheel into
/opt/wifiprov, `wifiprov --version` and `wifiprov device --help` from that copy, the service's
files written by it (a dry run), shell completion in bash and zsh, and the install from a git URL.
One difference, said where it is made: Debian has no ``python3-lgpio`` (Raspberry Pi OS's
archive, which has it, is not reachable here), so that one apt line is left out.

Needs root, the Debian mirror and PyPI; without them the tests fail and say why. The first run
builds the Debian base (about a minute) under build/; later runs reuse it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.debian_root import Result, Runner, Unavailable, entered, fresh_root

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs/raspberry-pi.md"
DIST_TOOLS = REPO / "build/dist-tools"  # shared by the scratch clones below: built once
WHEEL = re.compile(r"^built (\S+/wifiprov-(\S+)-py3-none-any\.whl)$", re.MULTILINE)


def doc_block(name: str) -> str:
    """The shell block under ``<!-- test: name -->`` in docs/raspberry-pi.md."""
    found = re.search(rf"<!-- test: {name} -->\n```sh\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert found, f"docs/raspberry-pi.md has no block marked <!-- test: {name} -->"
    return found.group(1)


def make_dist(repo: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIST_DIR": str(out), "DIST_TOOLS": str(DIST_TOOLS)}
    done = subprocess.run(["make", "-C", str(repo), "dist"], capture_output=True, text=True,
                          timeout=600, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def wheel_version(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = z.read(name).decode()
    found = re.search(r"^Version: (\S+)$", metadata, re.MULTILINE)
    assert found, metadata[:500]
    return found.group(1)


def test_make_dist_versions_each_commit_and_leaves_out_uncommitted_changes(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    versions = []
    for n in range(2):
        if n:
            git(clone, "-c", "user.email=t@example.com", "-c", "user.name=t",
                "commit", "-q", "--allow-empty", "-m", "one more")  # fmt: skip
        (clone / "README.md").write_text("uncommitted\n")  # a change HEAD does not have
        done = make_dist(clone, tmp_path / f"dist{n}")
        assert f"note: building HEAD ({git(clone, 'rev-parse', '--short', 'HEAD')})" in done.stdout
        built = WHEEL.search(done.stdout)
        assert built, done.stdout
        wheel, version = Path(built.group(1)), built.group(2)
        commit = git(clone, "rev-parse", "HEAD")
        # setuptools-scm's reading of git describe: no tag here yet, so 0.1.devN+gHASH
        count = git(clone, "rev-list", "--count", "HEAD")
        tag = git(clone, "describe", "--tags", "--abbrev=0") if git(clone, "tag") else ""
        if not tag:
            assert re.fullmatch(rf"\d+\.\d+\.dev{count}\+g[0-9a-f]+", version), version
        assert re.search(r"\+g([0-9a-f]+)$", version) and commit.startswith(
            version.rsplit("+g", 1)[1]
        ), (version, commit)  # fmt: skip
        assert wheel_version(wheel) == version  # the metadata says the same
        with zipfile.ZipFile(wheel) as z:  # the data files the package reads at run time
            names = set(z.namelist())
        for needed in (
            "wifiprov/cloud/console/templates/base.html",
            "wifiprov/cloud/console/static/console.css",
            "wifiprov/device/setup_page.html",
            "wifiprov/cloud/db/migrations/versions/0001_initial.py",
        ):
            assert needed in names, needed
        assert any(n.startswith("wifiprov/cloud/console/templates/add_device/") for n in names)
        sdist = tmp_path / f"dist{n}" / f"wifiprov-{version}.tar.gz"
        assert sdist.exists(), sorted(p.name for p in (tmp_path / f"dist{n}").iterdir())
        readme = subprocess.run(["tar", "-xzOf", str(sdist), f"wifiprov-{version}/README.md"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert readme.startswith("# wifiprov") and "uncommitted" not in readme
        versions.append(version)
    assert versions[0] != versions[1]


@dataclass
class Pi:
    root: Path
    run: Runner
    version: str
    install: Result


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pi]:
    """A clean Debian root where the page's build and install steps have run."""
    tmp = tmp_path_factory.mktemp("install")
    build = doc_block("build").splitlines()
    assert build[0].split("#")[0].strip() == "make dist", build
    done = make_dist(REPO, tmp / "dist")  # the page's `make dist`, into a folder of our own
    built = WHEEL.search(done.stdout)
    assert built, done.stdout
    wheel, version = Path(built.group(1)), built.group(2)
    assert build[1].startswith("scp dist/wifiprov-*-py3-none-any.whl "), build  # done below

    try:
        with fresh_root(tmp) as root, entered(root) as run:
            home = root / "home/pi"
            home.mkdir(parents=True)
            shutil.copy(wheel, home)  # what the page's scp does
            lines = doc_block("install").splitlines()
            lgpio = [line for line in lines if "python3-lgpio" in line]
            assert lgpio == ["sudo apt install -y python3-lgpio    # Raspberry Pi OS's GPIO "
                             "library, for gpiozero"], lines  # fmt: skip
            script = "\n".join(
                f"true  # left out: Debian has no python3-lgpio: {line}" if line in lgpio
                else line for line in lines
            )  # fmt: skip
            result = run(script, cwd="/home/pi", timeout=1200)
            yield Pi(root, run, version, result)
    except Unavailable as exc:
        pytest.fail(f"no clean Debian root for the install test: {exc}", pytrace=False)


def test_the_documented_install_runs_on_clean_debian(pi: Pi) -> None:
    # The page's own last steps: `wifiprov --version` and `wifiprov device --help`.
    assert f"\nwifiprov {pi.version}\nusage: wifiprov device " in pi.install.stdout, pi.install
    again = pi.run("cd / && wifiprov --version && /opt/wifiprov/bin/wifiprov --version")
    assert again.stdout == f"wifiprov {pi.version}\n" * 2
    where = pi.run("/opt/wifiprov/bin/python -c 'import wifiprov; print(wifiprov.__file__)'")
    assert where.stdout == "/opt/wifiprov/lib/python3.11/site-packages/wifiprov/__init__.py\n"
    device = pi.run("wifiprov device --help")
    assert device.stdout.startswith("usage: wifiprov device ") and "--template-id" in device.stdout
    assert "--config" in device.stdout


def test_the_installed_copy_writes_the_service_for_itself(pi: Pi) -> None:
    done = pi.run("wifiprov device install --root /srv/dry --template-id TMPL1 "
                  "--template-name 'Garden Sensor' --country GB")  # fmt: skip
    unit = (pi.root / "srv/dry/etc/systemd/system/wifiprov-device.service").read_text()
    assert "ExecStart=/opt/wifiprov/bin/wifiprov device --config /etc/wifiprov/device.toml" \
        in unit, done  # fmt: skip
    assert "systemctl enable --now wifiprov-device.service" in done.stdout
    refused = pi.run("python3 -m venv /tmp/v && wifiprov device install --root /srv/dry2 "
                     "--template-id T --template-name N --program /tmp/v/bin/wifiprov",
                     check=False)  # fmt: skip
    assert refused.returncode == 1 and "PrivateTmp=yes" in refused.stderr, refused
    assert not (pi.root / "srv/dry2").exists()


def complete_in_bash(pi: Pi) -> Result:
    # An interactive bash reads ~/.bashrc, as a new terminal would; then Tab after "dev".
    return pi.run(
        "bash -ic 'complete -p wifiprov && COMP_WORDS=(wifiprov dev) COMP_CWORD=1 && "
        '_wifiprov_completion wifiprov && printf "[%s]\\n" "${COMPREPLY[@]}"\''
    )


def test_bash_completion_as_documented(pi: Pi) -> None:
    pi.run(doc_block("completion-bash") + ":\n")  # in bash (not exec'd: the shell is detected)
    done = complete_in_bash(pi)
    assert "complete -o default -F _wifiprov_completion wifiprov\n" in done.stdout, done
    assert done.stdout.endswith("[device]\n[devices]\n"), done


def test_zsh_completion_as_documented(pi: Pi) -> None:
    pi.run("apt-get install -y -qq zsh >/dev/null")
    pi.run(f"zsh -c {shlex.quote(doc_block('completion-zsh') + ':')}")
    # A new interactive zsh reads ~/.zshrc; completing `wifiprov dev` calls the function it
    # registered, which hands zsh's _arguments the candidates (shown here instead of a menu).
    done = pi.run(
        "zsh -ic '" + 'print -r -- "registered: ${_comps[wifiprov]}"; '
        '_arguments() { print -rl -- "$@" }; words=(wifiprov dev); CURRENT=2; '
        "${_comps[wifiprov]}'"
    )
    assert "registered: _wifiprov_completion\n" in done.stdout, done
    assert '"device":"Run the device agent' in done.stdout and '"devices":' in done.stdout, done


def test_install_from_a_git_url_as_documented(pi: Pi) -> None:
    # The page's alternative to the wheel, with its example URL pointing at a copy of this
    # repository (at the commit the wheel was built from) instead of GitHub.
    line = doc_block("install-from-git").strip()
    url = '"git+https://github.com/you/wifiprov.git@main"'
    assert line == f"sudo /opt/wifiprov/bin/pip install {url}", line
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(pi.root / "srv/wifiprov.git")],
                   check=True, timeout=120)  # fmt: skip
    head = git(REPO, "rev-parse", "HEAD")
    pi.run("sudo /opt/wifiprov/bin/pip uninstall -q -y wifiprov")
    done = pi.run(line.replace(url, f'"git+file:///srv/wifiprov.git@{head}"'),
                  timeout=900)  # fmt: skip
    assert "Successfully installed wifiprov" in done.stdout, done
    assert pi.run("wifiprov --version").stdout == f"wifiprov {pi.version}\n"
