"""The changed files of an image pair, for the remote-mode baselines.

changed_files(OLD.tar, NEW.tar, tool) yields (path, basis bytes, new bytes)
for every regular file of at least 64 bytes in NEW's missing layers whose
path exists in OLD with other content. OLD and NEW are `docker save`
archives; `tool` names the caller in error messages.
"""
import json, sys, tarfile


def _open_archive(path, tool):
    """The archive and its layer paths, lowest first."""
    try:
        archive = tarfile.open(path)
        return archive, json.load(archive.extractfile("manifest.json"))[0]["Layers"]
    except (OSError, tarfile.TarError, KeyError, ValueError) as e:
        sys.exit("%s: %s is not a docker save archive: %s" % (tool, path, e))


def changed_files(old_path, new_path, tool):
    old_archive, old_layers = _open_archive(old_path, tool)
    new_archive, new_layers = _open_archive(new_path, tool)
    old_files = {}
    for layer in old_layers:
        layer_tar = tarfile.open(fileobj=old_archive.extractfile(layer))
        for member in layer_tar:
            if member.isfile():
                old_files[member.name] = layer_tar.extractfile(member).read()
    for layer in (l for l in new_layers if l not in old_layers):
        layer_tar = tarfile.open(fileobj=new_archive.extractfile(layer))
        for member in layer_tar:
            if not member.isfile():
                continue
            data = layer_tar.extractfile(member).read()
            base = old_files.get(member.name)
            if base is None or base == data or len(data) < 64:
                continue
            yield member.name, base, data
