"""Package discovery for the folder → namespace mapping declared in pyproject.toml.

Top-level folders (operators/, apps/, render/, voice/) install as clara_stream.<name>; setuptools'
declarative `find` cannot see them under their mapped names, so the list is computed here.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"operators": "clara_stream.operators", "apps": "clara_stream.apps",
          "render": "clara_stream.render", "voice": "clara_stream.voice"}
EXCLUDE = ["*__pycache__*", "*.egg-info*"]

packages = find_namespace_packages(include=["clara_stream", "clara_stream.*"], exclude=EXCLUDE)
for folder, namespace in MAPPED.items():
    packages.append(namespace)
    packages += [f"{namespace}.{p}" for p in find_namespace_packages(where=folder, exclude=EXCLUDE)]

setup(packages=packages)
