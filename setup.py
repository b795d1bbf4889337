"""Packaging: everything else is in pyproject.toml.

kernels/ sits at the top of the repository, because it is what a reader comes to see, but it is
installed as the subpackage `minipsp.kernels`: a generic top-level module called `kernels` already
exists on PyPI. setuptools' `package-dir` does the mapping; the subpackages of kernels/ (one per op
family) are found here so that adding a family needs no edit to the packaging.
"""

from setuptools import find_packages, setup

kernel_families = find_packages(where="kernels")
setup(
    packages=find_packages(include=["minipsp", "minipsp.*"])
    + ["minipsp.kernels"]
    + [f"minipsp.kernels.{family}" for family in kernel_families],
    package_dir={"minipsp": "minipsp", "minipsp.kernels": "kernels"},
    py_modules=["_minipsp_entry"],      # the console script's entry: see its docstring
)
