"""Installs the five top-level folders under one import name: nasengine/ as `nasengine`, and the component folders
kernels/, supernets/, predictors/ and search_spaces/ as `nasengine.kernels`, ... (`kernels` and `predictors` are other
projects' names on PyPI; Hugging Face's `kernels` arrives with transformers). Metadata lives in pyproject.toml."""

from setuptools import find_packages, setup

COMPONENTS = ("kernels", "supernets", "predictors", "search_spaces")

packages = find_packages(include=["nasengine", "nasengine.*"])
package_dir = {"nasengine": "nasengine"}
for folder in COMPONENTS:
    package_dir[f"nasengine.{folder}"] = folder
    packages += [f"nasengine.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir=package_dir)
