"""Find every tcptune package automatically; pyproject.toml holds everything else.

setuptools' declarative ``packages.find`` cannot add the top-level profiles/
directory as the data package tcptune.bundled_profiles, so the list is
computed here: a new subpackage of tcptune ships without anyone listing it.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["tcptune", "tcptune.*"]), "tcptune.bundled_profiles"])
