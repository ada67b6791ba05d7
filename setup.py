"""wemem_tf: iterative pruning with defenses against membership inference."""

import setuptools

TF_VERSION = "2.15.1"

INSTALL_REQUIRES = [
    f"tensorflow=={TF_VERSION}",
    f"tf-keras=={TF_VERSION}",
    "tensorflow-model-optimization==0.8.0",
    "keras-tuner==1.4.7",
    "absl-py>=1.4,<2",
    # Membership-inference tooling (privacy_tests) ships in 0.8.12, not 0.9.0.
    "tensorflow-privacy==0.8.12",
    "tensorflow-probability==0.22.1",
    "tf-models-official==2.15.0",
    # tensorflow-privacy's MIA code imports sklearn.utils.parallel_backend.
    "scikit-learn==1.5.2",
    "numpy>=1.23,<2",
    "scipy>=1.10",
    "matplotlib>=3.7",
    "tqdm>=4.60",
]

# Ray 2.53+ needs packaging >= 24.2, which tensorflow-privacy's pin refuses;
# 2.52.1 resolves at once. Ray imports pyarrow when it is installed
# (tf-models-official brings it); pyarrow >= 20 needs NumPy 2.
RAY_REQUIRES = ["ray==2.52.1", "pyarrow>=14,<20"]

setuptools.setup(
    name="wemem_tf",
    version="0.1.0",
    description=("Iterative pruning for TensorFlow/Keras with WeMem defenses "
                 "against membership inference attacks."),
    python_requires=">=3.9,<3.12",
    packages=setuptools.find_packages(include=["wemem_tf*", "attacks*",
                                               "wemem_eval*", "wemem_cli*"]),
    package_data={"wemem_tf.memorization": ["kernels/*.cc", "kernels/*.h"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "ray": RAY_REQUIRES,
        "test": ["pytest>=7", "hypothesis>=6.80", "pytest-timeout>=2",
                 *RAY_REQUIRES],
    },
    entry_points={"console_scripts": ["wemem = wemem_cli.main:run"]},
)
