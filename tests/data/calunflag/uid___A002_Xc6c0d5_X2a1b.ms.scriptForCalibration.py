# ALMA Data Reduction Script
import analysisUtils as aU

# Calibration

thesteps = []
step_title = {0: 'Import of the ASDM',
              1: 'Fix of SYSCAL table times',
              2: 'listobs',
              3: 'A priori flagging',
              4: 'Generation and time averaging of the WVR cal table',
              5: 'Generation of the Tsys cal table',
              6: 'Generation of the antenna position cal table',
              7: 'Application of the WVR, Tsys and antpos cal tables',
              8: 'Split out science SPWs and time average',
              9: 'Listobs, and save original flags',
              10: 'Initial flagging',
              11: 'Putting a model for the flux calibrator(s)',
              12: 'Save flags before bandpass cal',
              13: 'Bandpass calibration',
              14: 'Save flags before gain cal',
              15: 'Gain calibration',
              16: 'Save flags before applycal',
              17: 'Application of the bandpass and gain cal tables',
              18: 'Split out corrected column',
              19: 'Save flags after applycal'}

if 'applyonly' not in globals(): applyonly = False
try:
  print 'List of steps to be executed ...', mysteps
  thesteps = mysteps
except:
  print 'global variable mysteps not set.'
if (thesteps==[]):
  thesteps = range(0,len(step_title))
  print 'Executing all steps: ', thesteps

# The Python variable 'mysteps' will control which steps
# are executed when you start the script using
#   execfile('scriptForCalibration.py')
# e.g. setting
#   mysteps = [2,3,4]
# before starting the script will make the script execute
# only steps 2, 3, and 4
# Setting mysteps = [] will make it execute all steps.

import re

import os

import casadef

if applyonly != True: es = aU.stuffForScienceDataReduction() 


if re.search('^5.1.1', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')


# CALIBRATE_AMPLI:
# CALIBRATE_ATMOSPHERE: J0334-4008,J0336-3616,J0340-3547,NGC1387
# CALIBRATE_BANDPASS: J0334-4008
# CALIBRATE_DIFFGAIN: 
# CALIBRATE_FLUX: J0334-4008
# CALIBRATE_FOCUS: 
# CALIBRATE_PHASE: J0336-3616
# CALIBRATE_POINTING: J0334-4008
# OBSERVE_CHECK: J0340-3547
# OBSERVE_TARGET: NGC1387

# Using reference antenna = DV02

# Import of the ASDM
mystep = 0
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  if os.path.exists('uid___A002_Xc6c0d5_X2a1b.ms') == False:
    importasdm('uid___A002_Xc6c0d5_X2a1b', asis='Antenna Station Receiver Source CalAtmosphere CalWVR CorrelatorMode SBSummary', bdfflags=True, lazy=False, process_caldevice=False)
  if applyonly != True: es.fixForCSV2555('uid___A002_Xc6c0d5_X2a1b.ms')

# A priori flagging
mystep = 3
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms',
    mode = 'manual',
    spw = '1~24',
    autocorr = True,
    flagbackup = False)
  
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms',
    mode = 'manual',
    intent = '*POINTING*,*ATMOSPHERE*',
    flagbackup = False)
  
  flagcmd(vis = 'uid___A002_Xc6c0d5_X2a1b.ms',
    inpmode = 'table',
    useapplied = True,
    action = 'apply')

# Generation of the Tsys cal table
mystep = 5
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  os.system('rm -rf uid___A002_Xc6c0d5_X2a1b.ms.tsys') 
  gencal(vis = 'uid___A002_Xc6c0d5_X2a1b.ms',
    caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.tsys',
    caltype = 'tsys')
  
  # Flagging edge channels
  
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.tsys',
    mode = 'manual',
    spw = '17:0~3;124~127,19:0~3;124~127,21:0~3;124~127,23:0~3;124~127',
    flagbackup = False)
  
  # flag bad tsys: DV14 spike in spw 19
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.tsys',
    mode = 'manual',
    antenna = 'DV14',
    spw = '19:60~66',
    flagbackup = False)

  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.tsys',
    mode = 'manual',
    timerange='01:34:0~01:36:0',
    antenna = '',
    spw = '21',
    flagbackup = False)

# Listobs, and save original flags
mystep = 9
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  if not os.path.exists('uid___A002_Xc6c0d5_X2a1b.ms.split.flagversions/Original.flags'):
    flagmanager(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
      mode = 'save',
      versionname = 'Original')

# Initial flagging
mystep = 10
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  # Flagging shadowed data
  
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'shadow',
    flagbackup = False)
  
  # Flagging edge channels
  
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'manual',
    spw = '0:0~7;120~127,1:0~7;120~127,2:0~7;120~127,3:0~7;120~127',
    flagbackup = False)

  # CO(3-2) absorption against the bandpass calibrator (QA2)
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'manual',
    field = '0', # J0334-4008
    spw = '1:1200~1212',
    flagbackup = False)

  # same absorption seen on the phase calibrator (copied from the block above)
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'manual',
    field = '1', # J0334-4008
    spw = '1:1203~1211',
    flagbackup = False)

  # spike on the check source, from an older EB of this SB
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'manual',
    field = '2', # J0423-0120
    spw = '3:400~404',
    flagbackup = False)

  # residual atmospheric line in the science target
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split', mode = 'manual', field = '3', spw = '2:840~860', flagbackup = False)

# Putting a model for the flux calibrator(s)
mystep = 11
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  setjy(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    standard = 'manual',
    field = '0', # J0334-4008
    fluxdensity = [0.512345, 0, 0, 0],
    spix = -0.612,
    reffreq = '345.796GHz')
  
  # fluxDensityUncertainty = 0.0256
  # meanAge = 4.0

# Bandpass calibration
mystep = 13
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  bandpass(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.bandpass',
    field = '0', # J0334-4008
    solint = 'inf',
    combine = 'scan',
    refant = 'DV02',
    solnorm = True,
    bandtype = 'B',
    gaintable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.ap_pre_bandpass')

# Gain calibration
mystep = 15
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  gaincal(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.phase_int',
    field = '0~2', # J0334-4008,J0336-3616,J0340-3547
    solint = 'int',
    refant = 'DV02',
    gaintype = 'G',
    calmode = 'p',
    gaintable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.bandpass')
  
  fluxscaleDict = fluxscale(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.ampli_inf',
    fluxtable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.flux_inf',
    reference = '0') # J0334-4008

  # phase-only solutions on every field, to look at the target's phase stability (not applied)
  gaincal(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.phase_all',
    field = '0~3', # J0334-4008,J0336-3616,J0340-3547,NGC1387
    solint = 'inf',
    refant = 'DV02',
    calmode = 'p')

# Application of the bandpass and gain cal tables
mystep = 17
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  applycal(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    field = '2,3', # J0340-3547,NGC1387
    gaintable = ['uid___A002_Xc6c0d5_X2a1b.ms.split.bandpass', 'uid___A002_Xc6c0d5_X2a1b.ms.split.phase_inf', 'uid___A002_Xc6c0d5_X2a1b.ms.split.flux_inf'],
    gainfield = ['', '1', '1'], # J0336-3616
    interp = 'linear,linear',
    calwt = True,
    flagbackup = False)
