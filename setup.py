from setuptools import find_packages, setup

setup(
    name="knowrl",
    version="0.1.0",
    description="KnowRL: reinforcement learning for reliable self-knowledge in LLMs (OpenRLHF-style engine)",
    packages=find_packages(include=["openrlhf", "openrlhf.*", "evaluation", "evaluation.*"]),
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "knowrl-train=openrlhf.cli.train_knowrl:main",
            "knowrl-eval=evaluation.run_eval:main",
            "knowrl-prompts=openrlhf.knowrl.validate_prompts:main",
        ]
    },
)
