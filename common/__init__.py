"""What Tacotron 2 and WaveGlow share: audio I/O, STFT/mel front end, filelists, logging, checkpoints.

Submodules are imported explicitly (``from common.mel import TacotronSTFT``) so that importing the
package stays cheap and pulls in neither torch nor librosa by itself.
"""
