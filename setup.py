"""ament_python / setuptools packaging for alster_mapping.

colcon users get their dependencies from rosdep (package.xml); pip-only users
install the exact pins in requirements/ (see the Makefile), so install_requires
stays minimal and unpinned here.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'alster_mapping'
share = os.path.join('share', package_name)


def _files(pattern):
    """Regular files matching ``pattern`` (an absent directory gives [])."""
    return sorted(p for p in glob(pattern) if os.path.isfile(p))


data_files = [
    ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
    (share, ['package.xml']),
]
for dest, pattern in [
    (os.path.join(share, 'launch'), 'launch/*.py'),
    (os.path.join(share, 'config'), 'config/*.yaml'),
    (os.path.join(share, 'config'), 'config/*.rviz'),
    (os.path.join(share, 'config', 'labelspaces'), 'config/labelspaces/*.yaml'),
    (os.path.join(share, 'config', 'train'), 'config/train/*.yaml'),
    (os.path.join(share, 'models'), 'models/*'),
]:
    files = _files(pattern)
    if files:
        data_files.append((dest, files))

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'tests', 'tests.*']),
    data_files=data_files,
    python_requires='>=3.10',
    install_requires=[
        'setuptools',
        'numpy',
        'scipy',
        'pyyaml',
        'safetensors',
        'tqdm',
        'pillow',
    ],
    zip_safe=True,
    maintainer='alster_mapping developers',
    maintainer_email='alster-mapping@users.noreply.github.com',
    description='Semantic 3D mapping for ROS 2 with a pip-only CLI.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'alster = alster_mapping.cli:main',
            'mapping_node = alster_mapping.ros.mapping_node:main',
        ],
    },
)
