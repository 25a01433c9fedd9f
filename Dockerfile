# The training/inference image: NGC PyTorch (CUDA, cuDNN, NCCL and torch included) + this recipe.
#   bash scripts/docker/build.sh && bash scripts/docker/interactive.sh
ARG FROM_IMAGE_NAME=nvcr.io/nvidia/pytorch:24.08-py3
FROM ${FROM_IMAGE_NAME}

WORKDIR /workspace/tacotron2

# Requirements first, so editing the code does not invalidate the pip layer. The container's own
# torch is kept: requirements.txt does not list torch.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir 'git+https://github.com/NVIDIA/dllogger@v1.0.0#egg=dllogger'

COPY . .
