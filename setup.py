from setuptools import find_packages, setup

setup(
    name="knowrl",
    version="0.1.0",
    description="KnowRL: reinforcement learning for reliable self-knowledge in LLMs (OpenRLHF-style engine)",
    packages=find_packages(include=["openrlhf", "openrlhf.*", "evaluation", "evaluation.*"])
    + ["openrlhf.knowrl_prompts"],
    # the default prompts live at the top of the checkout (users edit them there); the wheel carries
    # them inside the package, where openrlhf/utils/paths.py finds them when the checkout is absent
    package_dir={"openrlhf.knowrl_prompts": "knowrl_prompts"},
    package_data={"openrlhf.knowrl_prompts": ["*.md", "*.jsonl"], "evaluation": ["data/*.json", "data/*.jsonl"]},
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "knowrl-train=openrlhf.cli.train_knowrl:main",
            "knowrl-eval=evaluation.run_eval:main",
            "knowrl-prompts=openrlhf.cli.prompts:main",
        ]
    },
)
